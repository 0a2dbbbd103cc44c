"""The one-command lab, end to end: ``minilab up`` as a user runs it, inspected with the real kubectl,
the kubelet API spoken to directly, faults injected with ``kill -9``, and ``minilab down`` leaving no
process behind (issue 3, "Done when").

Two labs, each in a temporary directory with a free apiserver port and its own loopback block
(127.0.2.x insecure, 127.0.3.x hardened), so a lab the user runs on 127.0.0.x is not disturbed; and
one single-node lab per tunnel mode (``--tunnel ssh`` on 127.0.12.x, ``--tunnel konnectivity`` on
127.0.13.x), where every kubectl path must go through the tunnel.
Kubelet ports are read back from lab.json: 10250/10255 unless taken, then free ones.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from minikubelet.podstate import proc_start_ticks
from minilab.procs import alive, lingering, with_descendants
from minilab.profiles import BY_NAME
from minilab.sshd import sshd_binary
from minilab.state import LabDir, LabState, NodeSpec
from minilab.tunnelmode import established
from tests.e2e.cluster import ROOT, Kubectl, free_port, kubectl_binary
from tests.integration.tunnel_kit import exercise, pod_manifest, service_manifest, tcp_conns

pytestmark = pytest.mark.e2e


@dataclass
class Lab:
    dir: LabDir
    port: int

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "minilab", "--dir", str(self.dir.root), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"minilab {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n"
                                 f"{proc.stderr}\n{self.logs()}")
        return proc

    def logs(self) -> str:
        out = []
        for log in sorted(self.dir.logs.glob("*.log")) if self.dir.logs.exists() else ():
            out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(out)

    @property
    def state(self) -> LabState:
        state = self.dir.load()
        assert state is not None
        return state

    def node(self, name: str) -> NodeSpec:
        node = self.state.node(name)
        assert node is not None
        return node

    def kubectl(self, kubeconfig: Path | None = None) -> Kubectl:
        path = kubeconfig or self.dir.admin_conf
        cache = self.dir.root / "kubectl-cache" / f"{path.parent.name}-{path.stem}"
        cache.mkdir(parents=True, exist_ok=True)
        return Kubectl(kubectl_binary(), path, cache)


def start_lab(root: Path, first_ip: str, *args: str) -> Lab:
    lab = Lab(LabDir(root / "lab"), free_port())
    service_cidr = "127.98.{}.0/24".format(first_ip.split(".")[2])  # its own VIPs and kube-proxy chains
    lab.cli("up", "-q", "--port", str(lab.port), "--first-node-ip", first_ip, "--service-cidr", service_cidr,
            *args)
    return lab


def stop_lab(lab: Lab) -> None:
    lab.cli("down", check=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = start_lab(tmp_path_factory.mktemp("minilab-insecure"), "127.0.2.2")
    try:
        yield lab
    finally:
        stop_lab(lab)


@pytest.fixture(scope="module")
def hardened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    lab = start_lab(tmp_path_factory.mktemp("minilab-hardened"), "127.0.3.2", "--profile", "hardened",
                    "--nodes", "1", "--join-with-bootstrap-token", "node2")
    try:
        yield lab
    finally:
        stop_lab(lab)


TUNNEL_IPS = {"ssh": "127.0.12.2", "konnectivity": "127.0.13.2"}
HOST_KEY_ROW = "ssh-host-key" in BY_NAME  # the profile row that turns on --ssh-known-hosts


@pytest.fixture(scope="module", params=list(TUNNEL_IPS))
def tunneled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    mode = request.param
    if mode == "ssh" and sshd_binary() is None:
        pytest.skip("--tunnel ssh needs OpenSSH's sshd (scripts/test.sh installs openssh-server)")
    args = ["--nodes", "1", "--tunnel", mode]
    if mode == "ssh" and HOST_KEY_ROW:  # the lab writes known_hosts from the nodes' real host keys
        args += ["--set", "ssh-host-key=hardened"]
    lab = start_lab(tmp_path_factory.mktemp(f"minilab-{mode}"), TUNNEL_IPS[mode], *args)
    try:
        yield lab
    finally:
        stop_lab(lab)


# --- helpers ---------------------------------------------------------------------------------------


def eventually(probe: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    """Poll another process's effect (a kubectl answer, /proc) until ``probe`` returns a truthy value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_running(k: Kubectl, pod: str) -> dict[str, Any]:
    k.ok("wait", "--for=jsonpath={.status.phase}=Running", f"pod/{pod}", "--timeout=30s")
    return k.json("get", "pod", pod)


def container_pid(pod: dict[str, Any]) -> int:
    return int(pod["status"]["containerStatuses"][0]["containerID"].removeprefix("process://"))


def unverified() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def http_get(url: str, ctx: ssl.SSLContext | None = None, token: str = "") -> tuple[int, str]:
    """What ``curl -sk`` sees: the status code and body (no exception for 4xx)."""
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def client_cert_ctx(lab: Lab, name: str) -> ssl.SSLContext:
    ctx = unverified()
    ctx.load_cert_chain(str(lab.dir.pki(f"{name}.crt")), str(lab.dir.pki(f"{name}.key")))
    return ctx


def pod_names(body: str) -> set[str]:
    return {p["metadata"]["name"] for p in json.loads(body)["items"]}


def token_of(lab: Lab, user: str) -> str:
    for line in (lab.dir.root / "tokens.csv").read_text().splitlines():
        if line.split(",")[1] == user:
            return line.split(",")[0]
    raise KeyError(user)


def csr_rows(k: Kubectl) -> list[list[str]]:
    return [line.split() for line in k.ok("get", "csr", "--no-headers").splitlines()]


def kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    eventually(lambda: proc_start_ticks(pid) is None, f"pid {pid} to die", 10)


# --- the insecure lab ------------------------------------------------------------------------------


def test_get_nodes_shows_both_nodes_ready_and_up_again_is_a_no_op(lab: Lab) -> None:
    k = lab.kubectl()
    nodes = {n["metadata"]["name"]: n for n in k.json("get", "nodes")["items"]}
    assert set(nodes) == {"node1", "node2"}
    for name, ip in (("node1", "127.0.2.2"), ("node2", "127.0.2.3")):
        status = nodes[name]["status"]
        assert {"type": "InternalIP", "address": ip} in status["addresses"]
        assert next(c for c in status["conditions"] if c["type"] == "Ready")["status"] == "True"
        assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == lab.node(name).port
    wide = k.ok("get", "nodes", "-o", "wide").splitlines()
    assert wide[0].split()[:6] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP"]
    assert [line.split()[1] for line in wide[1:]] == ["Ready", "Ready"]
    again = lab.cli("up", "-q")
    assert "apiserver already running" in again.stdout and "kubelet/node2 already running" in again.stdout
    status = lab.cli("status").stdout
    assert "node1        True" in status and " NO " not in status


def test_a_node_joined_by_bootstrap_token_appears_after_its_csr_is_auto_approved(lab: Lab) -> None:
    k = lab.kubectl()
    assert "NotFound" in k.run("get", "node", "node3").stderr
    lab.cli("up", "-q", "--join-with-bootstrap-token", "node3")
    assert not (lab.dir.root / "nodes" / "node3").exists()  # no pre-made certificate or kubeconfig
    token_id = (lab.dir.root / "bootstrap-token").read_text().split(".")[0]
    mine = [row for row in csr_rows(k) if row[3] == f"system:bootstrap:{token_id}"]
    assert len(mine) == 1 and mine[0][2] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert mine[0][-1] == "Approved,Issued"
    csr_name = mine[0][0]
    node = k.json("get", "node", "node3")
    assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    # the order of events in the audit log: approval by the controller-manager, then the Node created
    # by the identity that approval issued
    events = [json.loads(line) for line in lab.dir.audit_log.read_text().splitlines()]
    approved = next(i for i, e in enumerate(events) if e["requestURI"].endswith(f"{csr_name}/approval")
                    and e["user"]["username"] == "system:kube-controller-manager")
    created = next(i for i, e in enumerate(events) if e["verb"] == "create" and e["requestURI"] == "/api/v1/nodes"
                   and e["user"]["username"] == "system:node:node3")
    assert approved < created
    kubeconfig = lab.dir.kubelet_root("node3") / "kubelet.conf"
    assert "system:node:node3" in k.ok("--kubeconfig", str(kubeconfig), "auth", "whoami")


def test_kubectl_run_and_create_f_run_pods_on_nodes_and_delete_stops_the_process(lab: Lab) -> None:
    k = lab.kubectl()
    k.ok("run", "p", "--image=busybox", "--restart=Never", "--", "sh", "-c", "echo hi; sleep 60")
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
                "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 5,
                         "containers": [{"name": "c", "image": "busybox",
                                         "command": ["sh", "-c", "echo from-q; sleep 60"]}]}}
    k.ok("create", "-f", "-", input=json.dumps(manifest))
    pods = {name: wait_running(k, name) for name in ("p", "q")}
    wide = {line.split()[0]: line.split() for line in k.ok("get", "pods", "-o", "wide").splitlines()[1:]}
    for name, pod in pods.items():
        node, ip = pod["spec"]["nodeName"], pod["status"]["podIP"]
        assert node in {"node1", "node2", "node3"} and ip.startswith("127.244.")
        assert wide[name][5:7] == [ip, node]  # NAME READY STATUS RESTARTS AGE IP NODE
        assert proc_start_ticks(container_pid(pod)) is not None
    pid = container_pid(pods["p"])
    k.ok("delete", "pod", "p", "--wait=true")
    assert proc_start_ticks(pid) is None  # stopped before the kubelet let the object go


def test_the_insecure_kubelet_api_answers_anyone(lab: Lab) -> None:
    k = lab.kubectl()
    pod = wait_running(k, "q")
    node = lab.node(pod["spec"]["nodeName"])
    assert node.port and node.read_only_port
    code, body = http_get(f"https://{node.ip}:{node.port}/pods", unverified())
    assert code == 200 and "q" in pod_names(body)
    assert body.startswith('{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{"') and body.endswith("]}\n")
    code, body = http_get(f"https://{node.ip}:{node.port}/containerLogs/default/q/c", unverified())
    assert (code, body) == (200, "from-q\n")
    code, body = http_get(f"http://{node.ip}:{node.read_only_port}/pods")
    assert code == 200 and "q" in pod_names(body)


def test_a_node_cannot_read_or_modify_another_nodes_objects(lab: Lab) -> None:
    k = lab.kubectl()
    k.ok("create", "secret", "generic", "for-node2", "--from-literal=k=v")
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-node2"},
                "spec": {"nodeName": "node2", "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "60"],
                                         "env": [{"name": "K", "valueFrom": {"secretKeyRef": {
                                             "name": "for-node2", "key": "k"}}}]}]}}
    k.ok("create", "-f", "-", input=json.dumps(manifest))
    wait_running(k, "on-node2")
    node1 = lab.kubectl(lab.dir.root / "nodes" / "node1" / "kubelet.conf")
    node2 = lab.kubectl(lab.dir.root / "nodes" / "node2" / "kubelet.conf")
    # the Node authorizer allows patching any Node; the NodeRestriction admission plugin refuses (as kubeadm's)
    labelled = node1.run("label", "node", "node2", "x=y")
    assert labelled.returncode != 0
    assert labelled.stderr.strip() == ('Error from server (Forbidden): nodes "node2" is forbidden: node "node1" is '
                                       'not allowed to modify node "node2"')
    status = node1.run("patch", "node", "node2", "--subresource=status", "-p",
                       '{"status":{"conditions":[{"type":"Ready","status":"False"}]}}')
    # kubectl reads nodes/status first, which the system:node rules do not grant (real kube neither)
    assert 'User "system:node:node1" cannot get resource "nodes/status"' in status.stderr
    assert "Forbidden" in node1.run("get", "secret", "for-node2").stderr
    assert ('pods "on-node2" is forbidden: node "node1" can only delete pods with spec.nodeName set to itself'
            in node1.run("delete", "pod", "on-node2", "--wait=false").stderr)
    restricted = node1.run("label", "node", "node1", "node-restriction.kubernetes.io/pool=a")
    assert 'is not allowed to modify labels: node-restriction.kubernetes.io/pool' in restricted.stderr
    assert "for-node2" in node2.ok("get", "secret", "for-node2", "-o", "name")  # its own pod's secret
    node1.ok("label", "node", "node1", "mine=yes")  # its own Node it may change
    k.ok("delete", "pod", "on-node2", "--wait=false")


def test_kill_9_of_a_kubelet_then_restart_adopts_its_pods(lab: Lab) -> None:
    k = lab.kubectl()
    marker = f"adopt-me-{os.getpid()}"
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "survivor"},
                "spec": {"nodeName": "node1", "restartPolicy": "Always",
                         "containers": [{"name": "c", "image": "busybox",
                                         "command": ["sh", "-c", f"echo {marker}; sleep 120"]}]}}
    k.ok("create", "-f", "-", input=json.dumps(manifest))
    before = wait_running(k, "survivor")
    pid = container_pid(before)
    assert lingering(marker) == [pid]
    kubelet = lab.state.procs["kubelet/node1"]
    kill9(kubelet.pid)
    assert proc_start_ticks(pid) is not None  # the pod outlives its kubelet
    out = lab.cli("restart-node", "node1").stdout
    assert "was not running" in out and "node node1 is posting Ready" in out
    assert alive(lab.state.procs["kubelet/node1"])
    node = lab.node("node1")
    code, body = eventually(lambda: (lambda r: r if r[0] == 200 else None)(
        http_get(f"https://{node.ip}:{node.port}/runningpods/", unverified())), "the kubelet API")
    assert "survivor" in pod_names(body)
    for _ in range(5):  # nothing to await for "no duplicate": look a few times while the new kubelet syncs
        assert lingering(marker) == [pid]
        time.sleep(0.1)
    after = k.json("get", "pod", "survivor")
    cs = after["status"]["containerStatuses"][0]
    assert (container_pid(after), cs["restartCount"], after["status"]["phase"]) == (pid, 0, "Running")
    assert "adopted container run pod=default/survivor" in (lab.dir.log("kubelet/node1")).read_text()


def test_apiserver_restart_with_the_sqlite_store_loses_nothing_and_watches_resume(lab: Lab) -> None:
    k = lab.kubectl()
    uid = k.json("get", "pod", "survivor")["metadata"]["uid"]
    csrs = {row[0] for row in csr_rows(k)}
    kill9(lab.state.procs["apiserver"].pid)
    out = lab.cli("restart-apiserver").stdout
    assert "was not running" in out and "the store" in out
    assert k.json("get", "pod", "survivor")["metadata"]["uid"] == uid
    assert {row[0] for row in csr_rows(k)} == csrs
    assert {n["metadata"]["name"] for n in k.json("get", "nodes")["items"]} == {"node1", "node2", "node3"}
    assert k.ok("get", "secret", "for-node2", "-o", "jsonpath={.data.k}") == base64.b64encode(b"v").decode()
    # created after the restart: the scheduler (controller-manager) and a kubelet must have re-watched
    k.ok("run", "after-restart", "--image=busybox", "--restart=Never", "--", "sh", "-c", "sleep 60")
    pod = wait_running(k, "after-restart")
    assert pod["spec"]["nodeName"] and proc_start_ticks(container_pid(pod)) is not None
    assert alive(lab.state.procs["controller-manager"])


def test_down_leaves_no_process_behind(lab: Lab) -> None:
    k = lab.kubectl()
    pids = [container_pid(k.json("get", "pod", name)) for name in ("q", "survivor", "after-restart")]
    marker = f"crashloop-{os.getpid()}"
    for i, node in enumerate(("node1", "node2", "node1", "node2")):  # pods in restart back-off while down runs
        manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"crashloop-{i}"},
                    "spec": {"nodeName": node, "restartPolicy": "Always",
                             "containers": [{"name": "c", "image": "busybox",
                                             "command": ["sh", "-c", f"echo {marker}; sleep 0.{i + 1}; exit 1"]}]}}
        k.ok("create", "-f", "-", input=json.dumps(manifest))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(
            (p["status"].get("containerStatuses") or [{}])[0].get("restartCount", 0) >= 1
            for p in k.json("get", "pods")["items"] if p["metadata"]["name"].startswith("crashloop-")):
        time.sleep(0.2)
    procs = list(lab.state.procs.values())
    out = lab.cli("down").stdout
    assert f"stopped {len(procs)} process(es)" in out and "killed" in out
    assert "warning" not in out
    assert lingering(str(lab.dir.root)) == [] and lingering(marker) == []
    assert [p.pid for p in procs if alive(p)] == []
    assert [pid for pid in pids if proc_start_ticks(pid) is not None] == []
    assert "nothing was running" in lab.cli("down").stdout
    assert "no lab running" in lab.cli("status").stdout


# --- the hardened lab ------------------------------------------------------------------------------


def test_the_hardened_kubelet_api_refuses_strangers_and_allows_the_apiserver(hardened: Lab) -> None:
    node = hardened.node("node1")
    assert node.read_only_port == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((node.ip, 10255), timeout=2).close()
    url = f"https://{node.ip}:{node.port}/pods"
    assert http_get(url, unverified())[0] == 401  # anonymous
    code, body = http_get(url, unverified(), token=token_of(hardened, "alice"))  # authenticated, not allowed
    assert (code, body) == (403, "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n")
    code, body = http_get(url, client_cert_ctx(hardened, "apiserver-kubelet-client"))
    assert code == 200 and json.loads(body)["kind"] == "PodList"
    verified = ssl.create_default_context(cafile=str(hardened.dir.ca_crt))  # what the apiserver checks
    verified.load_cert_chain(str(hardened.dir.pki("apiserver-kubelet-client.crt")),
                             str(hardened.dir.pki("apiserver-kubelet-client.key")))
    assert http_get(url, verified)[0] == 200
    assert http_get(f"https://127.0.0.1:{hardened.port}/api", unverified())[0] == 401  # --anonymous-auth=false


def served_issuer(ip: str, port: int) -> str:
    with socket.create_connection((ip, port), timeout=5) as raw, unverified().wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).issuer.rfc4514_string()


def test_a_serving_certificate_csr_stays_pending_until_kubectl_certificate_approve(hardened: Lab) -> None:
    k = hardened.kubectl()
    serving = eventually(lambda: [r for r in csr_rows(k) if r[2] == "kubernetes.io/kubelet-serving"],
                         "the serving CSR of node2")
    assert len(serving) == 1 and serving[0][3] == "system:node:node2" and serving[0][-1] == "Pending"
    client = [r for r in csr_rows(k) if r[2] == "kubernetes.io/kube-apiserver-client-kubelet"]
    assert [r[-1] for r in client] == ["Approved,Issued"]  # the client CSR was approved automatically
    node = hardened.node("node2")
    assert served_issuer(node.ip, node.port).startswith("CN=node2-ca@")  # self-signed while Pending
    k.ok("certificate", "approve", serving[0][0])
    eventually(lambda: [r for r in csr_rows(k) if r[0] == serving[0][0] and r[-1] == "Approved,Issued"],
               "the serving certificate to be issued")
    eventually(lambda: served_issuer(node.ip, node.port) == "CN=kubernetes", "node2 to serve its new certificate")


def test_the_hardened_lab_goes_down_without_a_trace(hardened: Lab) -> None:
    hardened.cli("down")
    assert lingering(str(hardened.dir.root)) == []


# --- the tunnel modes ------------------------------------------------------------------------------


def test_every_kubectl_path_goes_through_the_tunnel_and_none_straight_to_a_kubelet(tunneled: Lab) -> None:
    lab, mode = tunneled, tunneled.state.settings.tunnel
    k = lab.kubectl()
    k.ok("create", "-f", "-", input=json.dumps(pod_manifest("tp", "node1")))
    k.ok("create", "-f", "-", input=json.dumps(service_manifest("tsvc")))
    k.ok("wait", "--for=condition=Ready", "pod/tp", "--timeout=60s")
    done = exercise(k, "node1", "tp", service="tsvc").done
    assert {"logs", "exec", "node proxy", "pod proxy", "service proxy", "port-forward"} <= set(done), done
    api, node = lab.state.procs["apiserver"], lab.node("node1")
    follow = subprocess.Popen([k.binary, "--kubeconfig", str(k.kubeconfig), "logs", "-f", "tp"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ,
                              "HOME": str(k.cache_dir)})
    try:
        assert follow.stdout is not None and follow.stdout.readline() == b"line1\n"  # a kubelet connection is open
        conns = [c for c in tcp_conns() if c.state == "ESTAB"]
    finally:
        follow.terminate()
        follow.wait(10)
    outbound = [c for c in conns if f"pid={api.pid}," in c.process and not c.local.endswith(f":{lab.port}")]
    to_kubelet = [c for c in conns if c.peer == f"{node.ip}:{node.port}"]
    if mode == "ssh":
        ssh_port = lab.state.settings.ssh_port
        assert outbound and {c.peer for c in outbound} == {f"{node.ip}:{ssh_port}"}, outbound  # SSH only
        assert to_kubelet and all('"sshd' in c.process for c in to_kubelet), to_kubelet  # the node's sshd dials
    else:
        assert outbound == [], outbound  # the apiserver's only way out is the proxy server's Unix socket
        agent = lab.state.procs["konnectivity-agent/node1"]
        assert to_kubelet and all(f"pid={agent.pid}," in c.process for c in to_kubelet), to_kubelet
    log = lab.dir.log("apiserver").read_text()
    assert f"dialer={'ssh' if mode == 'ssh' else 'konnectivity'}" in log and "dialer=direct" not in log


def test_status_shows_the_tunnels_and_down_stops_them(tunneled: Lab) -> None:
    lab, mode = tunneled, tunneled.state.settings.tunnel
    node = lab.node("node1")
    status = lab.cli("status").stdout
    assert f"tunnel {mode}" in status.splitlines()[0]
    api_argv = lab.state.procs["apiserver"].argv
    if mode == "ssh":
        ssh_port = lab.state.settings.ssh_port
        assert f"node1      {node.ip}:{ssh_port}  up (1 connection(s))" in status, status
        log = lab.dir.log("apiserver").read_text()
        if HOST_KEY_ROW:
            assert "host keys checked against ssh/known_hosts" in status
            assert f"--ssh-known-hosts={lab.dir.root / 'ssh' / 'known_hosts'}" in api_argv
            assert "ssh host key NOT verified" not in log
        else:
            assert "INSECURE: node host keys NOT verified" in status and "ssh host key NOT verified" in log
    else:
        assert "proxy server /readyz 200 ok; 1 of 1 agent(s) connected (mutual TLS)" in status, status
        assert "--egress-selector-config-file" in api_argv
    # the node's end of the tunnel dies (sshd with its connection child, or the agent): status says so, and
    # `up` starts it again
    victim = lab.state.procs["sshd/node1" if mode == "ssh" else "konnectivity-agent/node1"]
    for p in with_descendants([victim]):
        os.kill(p.pid, signal.SIGKILL)
    down = eventually(lambda: (lambda r: r if r.returncode == 1 else None)(lab.cli("status", check=False)),
                      "status to report the tunnel down")
    assert "tunnels not up: " in down.stdout and (" DOWN " in down.stdout if mode == "ssh" else
                                                   "0 of 1 agent(s) connected" in down.stdout), down.stdout
    again = lab.cli("up", "-q").stdout
    assert "apiserver already running" in again and f"{'sshd' if mode == 'ssh' else 'konnectivity-agent'}/node1 " \
        "already running" not in again
    lab.cli("status")  # exit 0: every process alive, every tunnel up
    procs = list(lab.state.procs.values())
    assert f"stopped {len(procs)} process(es)" in lab.cli("down").stdout
    assert lingering(str(lab.dir.root)) == []
    assert [p.pid for p in procs if alive(p)] == []
    if mode == "ssh":
        assert established(node.ip, lab.state.settings.ssh_port) == 0  # no sshd connection child left either
