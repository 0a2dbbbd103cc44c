"""Shared by test_ssh_tunnel.py and test_konnectivity.py: the pod, the kubectl paths, and the checks that
prove where the apiserver's connections go.

* :data:`POD` - a pod that logs three lines, echoes on 7000 (port-forward) and serves HTTP on 8080
  (pod and service proxy), bound to its own IP (``$POD_IP``, downward API);
* :func:`exercise` - every apiserver -> node path the real kubectl has, as it exists in this tree
  (logs always; exec, port-forward and the node/pod/service proxies once the routes exist);
* :func:`tcp_peers` - the TCP connections of a process (``ss -tnpH``), to show that in tunnel modes the
  apiserver has none to a kubelet port;
* :class:`NodeNetns` - a node in its own network namespace with only ``lo`` and one-way exits
  (tests/integration/netns_relay.py): nothing outside can open a connection to any of its ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from miniapi.resources import lookup
from pki.init import init_pki
from tests.e2e.cluster import ROOT, Cluster, Kubectl, free_port
from tests.integration.kubelet_harness import KubeletProc, admin, container_status, wait_for, wait_node_ready


def start_kubelet(cluster: Cluster, name: str, ip: str, pod_cidr: str, netns: NodeNetns | None = None) -> KubeletProc:
    kubeconfig = cluster.root / "nodes" / name / "kubelet.conf"
    if not kubeconfig.exists():  # kubeadm join: a kubeconfig for another node from the same CA
        init_pki(cluster.root, apiserver_url=cluster.url, nodes=(name,), key_type="ec")
    extra = ["--node-status-update-frequency", "1s", "--pod-cidr", pod_cidr]
    if netns is not None:
        return NetnsKubelet(cluster, name, ip, cluster.root / f"kubelet-{name}", kubeconfig, extra, netns=netns).start()
    return KubeletProc(cluster, name, ip, cluster.root / f"kubelet-{name}", kubeconfig, extra).start()


def make_pods(cluster: Cluster, pods: dict[str, str], service: str = "") -> None:
    """Create ``{pod: node}`` (and a Service over them) and wait until each is running and ready."""
    async def go() -> None:
        async with admin(cluster) as kc:
            for pod, node in pods.items():
                await wait_node_ready(kc, node)
                await kc.create("pods", pod_manifest(pod, node), "default")
            if service:
                await kc.create("services", service_manifest(service), "default")
            for pod in pods:
                await wait_for(kc, "pods", lambda p: bool(container_status(p).get("ready")), name=pod,
                               namespace="default", timeout=60)

    asyncio.run(go())



LINES = "line1\nline2\nline3\n"
ECHO_PORT, HTTP_PORT = 7000, 8080
POD_PROGRAM = r"""
import http.server, os, socket, sys, threading
ip = os.environ["POD_IP"]
for i in (1, 2, 3):
    print(f"line{i}", flush=True)
def echo(c):
    with c:
        while (d := c.recv(65536)):
            c.sendall(d)
srv = socket.create_server((ip, 7000))
threading.Thread(target=lambda: [threading.Thread(target=echo, args=(srv.accept()[0],), daemon=True).start()
                                 for _ in iter(int, 1)], daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"pod {ip} path {self.path}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((ip, 8080), H).serve_forever()
"""


def pod_manifest(name: str, node: str, app: str = "tunnel") -> dict[str, object]:
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    container = {"name": "c1", "image": "python", "command": [sys.executable, "-c", POD_PROGRAM], "env": env,
                 "ports": [{"containerPort": HTTP_PORT}, {"containerPort": ECHO_PORT}]}
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
            "spec": {"nodeName": node, "restartPolicy": "Always", "terminationGracePeriodSeconds": 2,
                     "containers": [container]}}


def service_manifest(name: str, app: str = "tunnel") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": HTTP_PORT}]}}


def route_exists(resource: str, subresource: str) -> bool:
    rt = lookup("", resource)
    return rt is not None and rt.subresource(subresource) is not None


def until(fn, timeout: float = 20, what: str = ""):  # type: ignore[no-untyped-def]
    """Poll ``fn`` (another process's effect) until it returns something truthy."""
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        try:
            if result := fn():
                return result
        except AssertionError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or fn}: {last}")


@dataclass
class Results:
    done: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def exercise(kubectl: Kubectl, node: str, pod: str, service: str | None = None) -> Results:
    """Drive every apiserver -> node path through the real kubectl; returns which ran and which have no route."""
    r = Results()
    until(lambda: kubectl.ok("logs", pod) == LINES, what=f"kubectl logs {pod}")
    r.done.append("logs")
    if route_exists("pods", "exec"):
        assert kubectl.ok("exec", pod, "--", "sh", "-c", "echo exec-ok; echo $((6*7))") == "exec-ok\n42\n"
        r.done.append("exec")
    else:
        r.missing.append("exec")
    if route_exists("nodes", "proxy"):
        assert kubectl.ok("get", "--raw", f"/api/v1/nodes/{node}/proxy/healthz") == "ok"
        r.done.append("node proxy")
    else:
        r.missing.append("node proxy")
    if route_exists("pods", "proxy"):
        path = f"/api/v1/namespaces/default/pods/{pod}:{HTTP_PORT}/proxy/hello"
        out = until(lambda: kubectl.run("get", "--raw", path).stdout, what="pod proxy")
        assert out.startswith("pod 127.") and out.endswith("path /hello\n"), out
        r.done.append("pod proxy")
        if service:
            out = until(lambda: _service(kubectl, service), what="service proxy")
            assert "path /svc" in out, out
            r.done.append("service proxy")
    else:
        r.missing.append("pod proxy")
    if route_exists("pods", "portforward"):
        assert until(lambda: port_forward_echo(kubectl, pod, b"through the tunnel\n"), what="port-forward") == \
            b"through the tunnel\n"
        r.done.append("port-forward")
    else:
        r.missing.append("port-forward")
    return r


def _service(kubectl: Kubectl, service: str) -> str:
    proc = kubectl.run("get", "--raw", f"/api/v1/namespaces/default/services/{service}:http/proxy/svc")
    return proc.stdout if proc.returncode == 0 else ""


def port_forward_echo(kubectl: Kubectl, pod: str, payload: bytes) -> bytes:
    local = free_port()
    cmd = [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir),
           "port-forward", f"pod/{pod}", f"{local}:{ECHO_PORT}", "--address", "127.0.0.1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ,
                            "HOME": str(kubectl.cache_dir)})
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert b"Forwarding from" in line, (line, proc.stderr.read() if proc.poll() is not None else b"")
        with socket.create_connection(("127.0.0.1", local), 10) as s:
            s.settimeout(15)
            s.sendall(payload)
            got = b""
            while len(got) < len(payload) and (chunk := s.recv(65536)):
                got += chunk
            return got
    except OSError:
        return b""
    finally:
        proc.terminate()
        proc.wait(10)


# -- where connections go ----------------------------------------------------------------------------------

_SS = re.compile(r"^(\S+)\s+\d+\s+\d+\s+(\S+)\s+(\S+)\s+(.*)$")


@dataclass(frozen=True)
class Conn:
    state: str
    local: str
    peer: str
    process: str


def tcp_conns(netns: str = "") -> list[Conn]:
    """Every TCP connection of the namespace (``ss -tanpH``), with the owning processes."""
    argv = ["ss", "-tanpH"]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    conns = []
    for line in out.splitlines():
        m = _SS.match(line.strip())
        if m:
            conns.append(Conn(m.group(1), m.group(2), m.group(3), m.group(4)))
    return conns


def tcp_peers(pid: int, netns: str = "") -> list[str]:
    """Peer addresses of ``pid``'s established TCP connections."""
    return [c.peer for c in tcp_conns(netns) if c.state == "ESTAB" and f"pid={pid}," in c.process]


# -- a node without inbound ports ---------------------------------------------------------------------------

class NodeNetns:
    """A network namespace with only ``lo``: a node that nothing can dial into. ``exit_to(port)`` gives it
    a way OUT to 127.0.0.1:port in the host namespace (two relays joined by a Unix socket)."""

    def __init__(self, name: str, dir: Path) -> None:
        self.name, self.dir = name, dir
        self.relays: list[subprocess.Popen[bytes]] = []

    @staticmethod
    def available() -> str:
        """Empty if namespaces can be made here, else why not."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "iproute2 (ip) is not installed"
        probe = subprocess.run(["ip", "netns", "add", "mcp-probe"], capture_output=True, text=True)
        subprocess.run(["ip", "netns", "del", "mcp-probe"], capture_output=True)
        return "" if probe.returncode == 0 else f"ip netns add failed: {probe.stderr.strip()}"

    def create(self) -> NodeNetns:
        self.dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True)
        return self

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def exit_to(self, port: int) -> None:
        sock = str(self.dir / f"exit-{port}.sock")
        relay = [sys.executable, "-m", "tests.integration.netns_relay"]
        for argv in ([*relay, f"unix:{sock}", f"tcp:127.0.0.1:{port}"],
                     self.argv([*relay, f"tcp:127.0.0.1:{port}", f"unix:{sock}"])):
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert proc.stdout is not None and proc.stdout.readline() == b"ready\n", "relay did not start"
            self.relays.append(proc)

    def delete(self) -> None:
        for proc in self.relays:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@dataclass
class NetnsKubelet(KubeletProc):
    """A minikubelet started inside a node's network namespace (its pods run there too)."""

    netns: NodeNetns | None = None

    def args(self) -> list[str]:
        assert self.netns is not None
        return self.netns.argv(super().args())


def apiserver_pid(cluster: Cluster) -> int:
    assert cluster.proc is not None
    return cluster.proc.pid


def log_lines(cluster: Cluster, needle: str) -> list[str]:
    assert cluster.log is not None
    return [line for line in cluster.log.read_text(errors="replace").splitlines() if needle in line]


def dump(obj: object) -> str:
    return json.dumps(obj, indent=1)[:2000]
