"""``kubectl exec`` / ``kubectl attach`` and the Python client's exec, through the apiserver to a real kubelet.

Real processes: ``python -m miniapi`` with ``--kubelet-client-certificate/-key``, real ``minikubelet``
processes on 127.0.5.x, the real kubectl (under a pseudo-terminal for ``-it``) and the official
Python client. Two clusters, as for logs:

* ``plain``: no ``--kubelet-certificate-authority`` (unverified); its kubelet runs with webhook
  authentication/authorization, so only the apiserver's identity may exec;
* ``verified``: ``--kubelet-certificate-authority=ca.crt``; one kubelet with a CA-signed serving
  certificate for its IP, one with a self-signed one.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest
from kubernetes import client, config
from kubernetes.stream import stream

from miniapi.client import ClientError, KubeClient
from miniapi.tlsconfig import client_ssl_context
from tests.e2e.cluster import Cluster, Kubectl, make_cluster
from tests.integration.kubelet_harness import (
    KubeletProc,
    admin,
    container_status,
    kubelet_client_args,
    pod_manifest,
    wait_for,
    webhook_kubelet_args,
)
from tests.integration.test_pod_logs import serving_cert, start_kubelet

V5 = "v5.channel.k8s.io"
SLEEPER = ["sleep", "3600"]
READER = ["sh", "-c", "while read l; do echo got:$l; done; echo bye"]


async def pod_running(kc: KubeClient, name: str, node: str, command: list[str] | None = None, **extra: Any) -> None:
    try:
        await kc.get("pods", name, "default")
    except ClientError as exc:
        if exc.code != 404:
            raise
        manifest = pod_manifest(name, node, command=command or SLEEPER, **extra)
        if extra.get("stdin"):
            manifest["spec"]["restartPolicy"] = "Never"
        await kc.create("pods", manifest, "default")
    await wait_for(kc, "pods", lambda p: bool(container_status(p).get("ready")), name=name, namespace="default")


# -- the unverified cluster, its kubelet with webhook authn/authz ---------------------------------------

@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("exec-plain")
    c = make_cluster(root, extra_args=kubelet_client_args(root))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kubelet(plain: Cluster) -> Iterator[KubeletProc]:
    k = start_kubelet(plain, "node1", "127.0.5.2", webhook_kubelet_args(plain))
    try:
        yield k
    finally:
        k.cleanup()


@pytest.fixture
async def kc(plain: Cluster, kubelet: KubeletProc) -> AsyncIterator[KubeClient]:
    async with admin(plain) as kc:
        await pod_running(kc, "p", "node1")
        yield kc
    assert kubelet.alive(), kubelet.log_text()


def test_kubectl_exec_output_exit_codes_and_stdin(plain: Cluster, kc: KubeClient) -> None:
    kubectl = plain.kubectl("admin.conf")
    proc = kubectl.run("exec", "p", "--", "echo", "hi")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "hi\n", "")
    proc = kubectl.run("exec", "p", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (proc.returncode, proc.stdout) == (3, "out\n")
    assert proc.stderr == "err\ncommand terminated with exit code 3\n"
    proc = kubectl.run("exec", "-i", "p", "--", "cat", input="line one\nline two\n")  # EOF -> ff 00 -> cat ends
    assert (proc.returncode, proc.stdout) == (0, "line one\nline two\n"), proc.stderr
    proc = kubectl.run("exec", "p", "--", "no-such-tool")
    assert (proc.returncode, proc.stderr) == (1, 'error: exec: "no-such-tool": executable file not found in $PATH\n')
    # exec joins the container's mount namespace: its service-account volume is where the pod spec says
    assert kubectl.ok("exec", "p", "--", "cat", "/var/run/secrets/kubernetes.io/serviceaccount/namespace") == "default"
    text = plain.log_text()
    assert "mode=unverified reason=no-kubelet-certificate-authority" in text
    assert "exec session ended pod=default/p container=c1 node=node1 user=kubernetes-admin " \
           "protocol=v5.channel.k8s.io kubelet-protocol=v5.channel.k8s.io outcome=kubelet-closed 1000" in text


def test_kubectl_spdy_fallback(plain: Cluster, kc: KubeClient) -> None:
    """KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false: kubectl POSTs with Upgrade: SPDY/3.1 (its fallback path)."""
    kubectl = plain.kubectl("admin.conf")

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir), *args]
        return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "HOME": str(kubectl.cache_dir),
                                   "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})

    proc = run("exec", "p", "--", "sh", "-c", "echo out; echo err >&2")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "out\n", "err\n")
    proc = run("exec", "p", "--", "sh", "-c", "exit 3")
    assert (proc.returncode, proc.stderr) == (3, "command terminated with exit code 3\n")
    proc = run("exec", "-i", "p", "--", "cat", input="through spdy\n")  # stdin FIN -> ff 00 -> cat ends
    assert (proc.returncode, proc.stdout) == (0, "through spdy\n"), proc.stderr
    proc = run("exec", "p", "--", "no-such-tool")
    assert (proc.returncode, proc.stderr) == (1, 'error: exec: "no-such-tool": executable file not found in $PATH\n')
    # every session took the SPDY path and ended cleanly; who hangs up first (kubectl after the Status,
    # or the kubelet's close 1000) is a race, both are a normal end
    outcomes = re.findall(r"protocol=SPDY/3\.1\+v4\.channel\.k8s\.io outcome=(.*?) seconds=", plain.log_text())
    assert len(outcomes) >= 4, outcomes
    assert set(outcomes) <= {"kubelet-closed 1000", "client-gone"}, outcomes


def kubectl_in_pty(kubectl: Kubectl, *args: str, rows: int = 30, cols: int = 100, websockets: bool = True
                   ) -> tuple[int, int]:
    """Start kubectl on a new pseudo-terminal of rows x cols; returns (pid, master fd)."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execve(kubectl.binary, [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir",
                                   str(kubectl.cache_dir), *args],
                  {**os.environ, "HOME": str(kubectl.cache_dir), "TERM": "dumb",
                   "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": str(websockets).lower()})
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return pid, fd


def read_until(fd: int, want: str, timeout: float = 15) -> str:
    out = b""
    end = time.monotonic() + timeout
    while want.encode() not in out:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not ready:
            raise AssertionError(f"{want!r} not seen in {out!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])
def test_kubectl_exec_tty_follows_resizes(plain: Cluster, kc: KubeClient, websockets: bool) -> None:
    pid, fd = kubectl_in_pty(plain.kubectl("admin.conf"), "exec", "-it", "p", "--", "sh", websockets=websockets)
    try:
        os.write(fd, b"stty size; echo mark-$((40+2))\n")
        assert "30 100" in read_until(fd, "mark-42")
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 132, 0, 0))  # kubectl gets SIGWINCH
        deadline = time.monotonic() + 10
        while True:  # the resize travels kubectl -> apiserver -> kubelet -> TIOCSWINSZ
            os.write(fd, b"stty size; echo mark-$((40+3))\n")
            seen = read_until(fd, "mark-43")
            if "45 132" in seen or time.monotonic() > deadline:
                break
        assert "45 132" in seen
        os.write(fd, b"exit 7\n")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 7
    finally:
        os.close(fd)
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


async def test_kubectl_attach_to_a_container_reading_stdin(plain: Cluster, kc: KubeClient) -> None:
    await pod_running(kc, "reader", "node1", READER, stdin=True, stdinOnce=True)
    kubectl = plain.kubectl("admin.conf")
    proc = await asyncio.to_thread(kubectl.run, "attach", "-i", "reader", input="one\ntwo\n", timeout=30)
    # stdin EOF -> ff 00 -> the FIFO writer closes -> stdinOnce closes the container's stdin -> it ends
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "got:one\ngot:two\nbye\n"
    pod = await wait_for(kc, "pods", lambda p: (p or {}).get("status", {}).get("phase") == "Succeeded",
                         name="reader", namespace="default")
    assert pod is not None
    proc = kubectl.run("exec", "reader", "--", "true")  # kubectl's own check, then ours (same words)
    assert proc.stderr.strip() == "error: cannot exec into a container in a completed pod; current phase is " \
                                  "Succeeded"


def test_python_client_exec(plain: Cluster, kc: KubeClient) -> None:
    cfg = client.Configuration()
    config.load_kube_config(config_file=str(plain.root / "admin.conf"), client_configuration=cfg)
    with client.ApiClient(cfg) as api:
        core = client.CoreV1Api(api)
        out = stream(core.connect_get_namespaced_pod_exec, "p", "default", command=["echo", "from python"],
                     stderr=True, stdin=False, stdout=True, tty=False)
        assert out == "from python\n"
        resp = stream(core.connect_get_namespaced_pod_exec, "p", "default", command=["sh", "-c", "cat; exit 4"],
                      stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
        try:
            resp.write_stdin("typed\n")
            assert resp.readline_stdout(timeout=10) == "typed"
            resp.close_channel(0) if resp.subprotocol == V5 else resp.write_stdin("")
            resp.run_forever(timeout=10)
            assert resp.returncode == 4
        finally:
            resp.close()


async def test_bad_requests_get_a_status_before_any_upgrade(plain: Cluster, kc: KubeClient) -> None:
    await kc.create("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "two"},
                             "spec": {"nodeName": "node1", "containers": [{"name": "a", "image": "busybox"},
                                                                          {"name": "b", "image": "busybox"}]}},
                    "default")
    base = "/api/v1/namespaces/default/pods/{}/exec?stdout=true&"
    cases = [
        ("p", "command=x&tty=maybe", 400, 'strconv.ParseBool: parsing "maybe": invalid syntax'),
        ("p", "", 400, "you must specify at least one command for the container"),
        ("p", "command=x&container=c9", 400, "container c9 is not valid for pod p"),
        ("two", "command=x", 400, "a container name must be specified for pod two, choose one of: [a b]"),
        ("nope", "command=x", 404, 'pods "nope" not found'),
    ]
    ctx = client_ssl_context(str(plain.pki / "ca.crt"), str(plain.root / "admin-client.pem"))
    async with aiohttp.ClientSession() as http:
        for pod, query, code, message in cases:
            url = plain.url + base.format(pod) + query
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(url, ssl=ctx, protocols=(V5,))
            assert info.value.status == code, (query, info.value)
            async with http.get(url, ssl=ctx) as resp:  # same checks for a non-upgrade request
                assert (resp.status, (await resp.json())["message"]) == (code, message)
        async with http.post(plain.url + base.format("p") + "command=x", ssl=ctx,  # SPDY, but no protocol
                             headers={"Connection": "Upgrade", "Upgrade": "SPDY/3.1"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["message"] == ("unable to upgrade: unable to negotiate protocol: client "
                                                      "supports [], server supports [v4.channel.k8s.io]")
        async with http.get(plain.url + base.format("p") + "command=x", ssl=ctx) as resp:  # no upgrade at all
            assert (resp.status, (await resp.json())["message"]) == (400, "Upgrade request required")
    proc = plain.kubectl("admin.conf").run("exec", "p", "-c", "c9", "--", "true")
    assert proc.returncode == 1 and "c9" in proc.stderr


async def test_rbac_wants_create_for_the_websocket_get(plain: Cluster, kc: KubeClient) -> None:
    rbac = "rbac.authorization.k8s.io"
    role = {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": {"name": "exec-get"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                      {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}]}
    binding = {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": {"name": "alice-exec"},
               "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "exec-get"},
               "subjects": [{"kind": "User", "name": "alice", "apiGroup": rbac}]}
    await kc.create("roles", role, "default", rbac)
    await kc.create("rolebindings", binding, "default", rbac)
    alice = plain.kubectl(plain.token_kubeconfig("alice", plain.token("alice")))
    message = ('pods "p" is forbidden: User "alice" cannot create resource "pods/exec" in API group "" in the '
               'namespace "default"')
    end = time.monotonic() + 10
    while message not in (proc := alice.run("exec", "p", "--", "echo", "ok")).stderr and time.monotonic() < end:
        await asyncio.sleep(0.1)  # the RBAC informer of another process catches up
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
    role["rules"][1]["verbs"] = ["get", "create"]
    role["metadata"] = (await kc.get("roles", "exec-get", "default", rbac))["metadata"]
    await kc.update("roles", role, "default", rbac)
    end = time.monotonic() + 10
    while (proc := alice.run("exec", "p", "--", "echo", "ok")).returncode != 0 and time.monotonic() < end:
        await asyncio.sleep(0.1)
    assert proc.stdout == "ok\n", proc.stderr


async def test_with_kubelet_authn_authz_only_the_apiserver_may_exec(plain: Cluster, kc: KubeClient,
                                                                   kubelet: KubeletProc) -> None:
    url = f"https://{kubelet.ip}:{kubelet.port}/exec/default/p/c1?command=id&output=1"
    insecure = client_ssl_context(verify=False)
    async with aiohttp.ClientSession() as http:
        for headers, code in (({}, 401), ({"Authorization": f"Bearer {plain.token('alice')}"}, 403)):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(url, ssl=insecure, protocols=(V5,), headers=headers)
            assert info.value.status == code
    assert plain.kubectl("admin.conf").ok("exec", "p", "--", "echo", "via apiserver") == "via apiserver\n"


async def test_a_kubelet_dying_mid_exec_ends_the_session_with_an_error(plain: Cluster, kc: KubeClient) -> None:
    victim = start_kubelet(plain, "node2", "127.0.5.3", [])
    try:
        await pod_running(kc, "p2", "node2", ["sleep", "30"])
        kubectl = plain.kubectl("admin.conf")
        cmd = [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir),
               "exec", "p2", "--", "sh", "-c", "echo started; sleep 20"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "started\n"
        victim.kill9()
        started = time.monotonic()
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 1 and time.monotonic() - started < 10
        assert err.startswith("error: Internal error occurred: error reading from the kubelet"), err
    finally:
        victim.cleanup()
    assert "outcome=kubelet-lost" in plain.log_text()


# -- the verified cluster --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("exec-verified")
    c = make_cluster(root, extra_args=[*kubelet_client_args(root), "--kubelet-certificate-authority",
                                       str(root / "pki" / "ca.crt")])
    try:
        yield c
    finally:
        c.stop()


async def test_verified_mode_execs_on_a_ca_signed_kubelet_only(verified: Cluster) -> None:
    good = start_kubelet(verified, "node1", "127.0.5.11", serving_cert(verified, "node1", ["127.0.5.11"]))
    bad = start_kubelet(verified, "node2", "127.0.5.12",
                        serving_cert(verified, "node2", ["127.0.5.12"], self_signed=True))
    try:
        async with admin(verified) as kc:
            await pod_running(kc, "good", "node1")
            await pod_running(kc, "bad", "node2")
        kubectl = verified.kubectl("admin.conf")
        assert kubectl.ok("exec", "good", "--", "echo", "verified") == "verified\n"
        proc = kubectl.run("exec", "bad", "--", "echo", "never")
        url = f"https://{bad.ip}:{bad.port}/exec/default/bad/c1?command=echo&command=never&error=1&output=1"
        assert (proc.returncode, proc.stdout) == (1, "")
        assert proc.stderr == (f'error: Internal error occurred: error sending request: Get "{url}": tls: failed to '
                               'verify certificate: x509: certificate signed by unknown authority\n')
        assert "mode=verified" in verified.log_text()
    finally:
        good.cleanup()
        bad.cleanup()


def _status(frame: bytes) -> dict[str, Any]:
    assert frame[:1] == b"\x03"
    return dict(json.loads(frame[1:]))
