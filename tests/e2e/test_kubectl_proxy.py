"""The apiserver proxy with the real kubectl (issue 5, "Done when"): ``kubectl get --raw`` through the
node, pod and service proxies with and without the ``https:`` prefix, and ``kubectl proxy`` with curl.

A real apiserver process; nodes, pods, services and endpoints are made by hand and their backends are
``proxy_backend.py`` processes on the loopback addresses the objects name (pods in 127.245.64.0/24,
the node at 127.0.1.64, whose "kubelet" is a TLS backend that reports the client certificate it saw).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from miniapi.selfsigned import ensure_self_signed
from tests.e2e.cluster import ROOT, Cluster, Kubectl, free_port, make_cluster

pytestmark = pytest.mark.e2e

NODE, NODE_IP, CIDR = "kp-node", "127.0.1.64", "127.245.64.0/24"
WEB_IP, TLS_IP = "127.245.64.2", "127.245.64.3"
NS = "/api/v1/namespaces/default"
BACKEND = str(ROOT / "tests" / "integration" / "proxy_backend.py")


@dataclass
class Env:
    cluster: Cluster
    admin: Kubectl
    ports: dict[str, int]


def _wait_listening(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "serving on host:port" once it listens
    assert line.startswith(b"serving on"), line


def _objects(admin: Kubectl, ports: dict[str, int]) -> None:
    def apply(obj: dict[str, Any]) -> None:
        admin.ok("apply", "-f", "-", input=json.dumps(obj))

    def status(kind: str, name: str, body: dict[str, Any]) -> None:
        admin.ok("patch", kind, name, "--subresource=status", "--type=merge", "-p", json.dumps(body))

    apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}, "spec": {"podCIDR": CIDR,
                                                                                   "podCIDRs": [CIDR]}})
    status("node", NODE, {"status": {"addresses": [{"type": "InternalIP", "address": NODE_IP}],
                                     "daemonEndpoints": {"kubeletEndpoint": {"Port": ports["kubelet"]}}}})
    for name, ip, port, labels in (("web", WEB_IP, ports["web"], {"app": "web"}),
                                   ("tls", TLS_IP, ports["tls"], {"app": "tls"})):
        apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
               "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "x", "ports": [
                   {"name": "web", "containerPort": port}]}]}})
        status("pod", name, {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}})
    for name, ip, port, port_name in (("web", WEB_IP, ports["web"], "http"), ("tls", TLS_IP, ports["tls"], "https")):
        apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
               "spec": {"ports": [{"name": port_name, "port": 80 if port_name == "http" else 443}]}})
        apply({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": "default"},
               "subsets": [{"addresses": [{"ip": ip, "targetRef": {"kind": "Pod", "namespace": "default",
                                                                   "name": name}}],
                            "ports": [{"name": port_name, "port": port}]}]})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("kubectl-proxy")
    # no selector-less service is touched by the endpoints controller; no scheduler/lifecycle for hand-made nodes
    pki = root / "pki"
    cluster = make_cluster(root, kcm_controllers="*,-scheduler,-nodelifecycle,-endpoint", extra_args=[
        "--kubelet-client-certificate", str(pki / "apiserver-kubelet-client.crt"),
        "--kubelet-client-key", str(pki / "apiserver-kubelet-client.key")])
    cert, key = ensure_self_signed(str(root / "backend"), "backend")
    ports = {"web": free_port(WEB_IP), "tls": free_port(TLS_IP), "kubelet": free_port(NODE_IP),
             "nodeweb": free_port(NODE_IP), "nodetls": free_port(NODE_IP)}
    procs = []
    try:
        for host, port, tls in ((WEB_IP, ports["web"], ()), (TLS_IP, ports["tls"], (cert, key)),
                                (NODE_IP, ports["kubelet"], (cert, key, str(pki / "ca.crt"))),
                                (NODE_IP, ports["nodeweb"], ()), (NODE_IP, ports["nodetls"], (cert, key))):
            proc = subprocess.Popen([sys.executable, BACKEND, host, str(port), *tls], stdout=subprocess.PIPE,
                                    cwd=ROOT)
            procs.append(proc)
            _wait_listening(proc)
        admin = cluster.kubectl("admin.conf")
        _objects(admin, ports)
        yield Env(cluster, admin, ports)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        cluster.stop()


def raw(env: Env, path: str) -> dict[str, Any]:
    return dict(json.loads(env.admin.ok("get", "--raw", path)))


@pytest.mark.parametrize("path,tls,backend_path", [
    (f"{NS}/pods/web/proxy/hello?x=1", False, "/hello"),
    (f"{NS}/pods/web:{{web}}/proxy/a/b/", False, "/a/b/"),
    (f"{NS}/pods/https:tls:{{tls}}/proxy/secret", True, "/secret"),
    (f"{NS}/pods/https:tls:/proxy/first-port", True, "/first-port"),
    (f"{NS}/services/web:http/proxy/svc", False, "/svc"),
    (f"{NS}/services/web:80/proxy/svc-by-number", False, "/svc-by-number"),
    (f"{NS}/services/https:tls:https/proxy/svc-tls", True, "/svc-tls"),
    (f"/api/v1/nodes/{NODE}:{{nodeweb}}/proxy/metrics", False, "/metrics"),
    (f"/api/v1/nodes/https:{NODE}:{{nodetls}}/proxy/other", True, "/other"),
    (f"/api/v1/nodes/http:{NODE}:{{kubelet}}/proxy/its-port", True, "/its-port"),  # kubelet port: https anyway
    (f"/api/v1/nodes/{NODE}/proxy/stats/summary", True, "/stats/summary"),
], ids=["pod", "pod-port", "pod-https", "pod-https-first-port", "svc-named-port", "svc-number", "svc-https",
        "node-http-port", "node-https-port", "node-kubelet-port", "node-kubelet"])
def test_get_raw_through_the_proxy(env: Env, path: str, tls: bool, backend_path: str) -> None:
    echo = raw(env, path.format(**env.ports))
    assert echo["path"] == backend_path and echo["tls"] is tls
    assert not [v for k, v in echo["headers"] if k.lower() == "authorization"]
    if "stats/summary" in path or "its-port" in path:  # the kubelet port: the kubelet client certificate
        assert echo["peerCert"] is True
    elif tls:  # https: prefix: no client credentials at all
        assert echo["peerCert"] is False


def test_get_raw_errors_are_statuses(env: Env) -> None:
    proc = env.admin.run("get", "--raw", f"{NS}/services/nothing-behind/proxy/")
    assert proc.returncode == 1 and 'endpoints "nothing-behind" not found' in proc.stderr
    proc = env.admin.run("get", "--raw", f"{NS}/pods/ftp:web:80/proxy/")
    assert proc.returncode == 1 and 'Error from server (BadRequest): invalid pod request "ftp:web:80"' in proc.stderr


def test_get_raw_html_links_point_back_through_the_proxy(env: Env) -> None:
    """The backend's page names itself (``http://POD_IP:PORT/landed``, ``/landed``): kubectl sees links
    through the proxy path; relative links and other hosts stay as they were."""
    prefix = f"{NS}/pods/web:{env.ports['web']}/proxy"
    page = env.admin.ok("get", "--raw", f"{prefix}/html")
    assert f'<a href="{prefix}/landed">self</a> <a href="{prefix}/landed">root</a>' in page
    assert '<a href="next.html">relative</a> <a href="http://example.invalid/away">away</a>' in page
    assert f'<link rel="stylesheet" href="{prefix}/static/site.css"><script src="app.js">' in page
    assert f'<img src="{prefix}/logo.png" alt="a&amp;b"><br/><form action="{prefix}/upload" method="post">' in page
    # gzip from the backend: decoded, rewritten, encoded again; kubectl's transport asked for gzip and decodes it
    assert env.admin.ok("get", "--raw", f"{prefix}/html?encoding=gzip") == page


@pytest.fixture(scope="module")
def kubectl_proxy(env: Env) -> Iterator[int]:
    """``kubectl proxy`` with a bearer-token kubeconfig: it adds ``Authorization`` to what it forwards."""
    token = env.cluster.kubectl(env.cluster.token_kubeconfig("proxy-admin", env.cluster.token("admin")))
    port = free_port()
    proc = subprocess.Popen([token.binary, "--kubeconfig", str(token.kubeconfig), "--cache-dir", str(token.cache_dir),
                             "proxy", f"--port={port}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "HOME": str(token.cache_dir)})
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"Starting to serve on 127.0.0.1:")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def curl(port: int, path: str, *args: str) -> str:
    out = subprocess.run(["curl", "-sS", "--max-time", "20", *args, f"http://127.0.0.1:{port}{path}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_kubectl_proxy_then_curl(env: Env, kubectl_proxy: int) -> None:
    echo = json.loads(curl(kubectl_proxy, f"{NS}/pods/web/proxy/via-kubectl-proxy?q=1", "-X", "POST",
                           "--data-binary", "payload", "-H", "X-From-Curl: 1"))
    assert echo["method"] == "POST" and echo["path"] == "/via-kubectl-proxy" and echo["query"] == "q=1"
    assert echo["bodyBytes"] == len("payload")
    headers = {k.lower(): v for k, v in echo["headers"]}
    assert headers["x-from-curl"] == "1"
    assert "authorization" not in headers  # kubectl proxy's bearer token stops at the apiserver
    assert headers["x-forwarded-uri"] == f"{NS}/pods/web/proxy/via-kubectl-proxy"


def test_kubectl_proxy_passes_redirects_without_following(env: Env, kubectl_proxy: int) -> None:
    out = curl(kubectl_proxy, f"{NS}/pods/web/proxy/redirect", "-o", "/dev/null", "-w",
               "%{http_code} %{redirect_url}")
    code, location = out.split(" ", 1)
    assert code == "302" and location.endswith(f"{NS}/pods/web/proxy/landed")
    landed = raw(env, f"{NS}/pods/web/proxy/landed-count-is-not-an-endpoint")  # the backend is alive
    assert landed["path"] == "/landed-count-is-not-an-endpoint"


def test_kubectl_proxy_streams(env: Env, kubectl_proxy: int) -> None:
    """The first chunk arrives through kubectl proxy and the apiserver before the backend finishes."""
    proc = subprocess.Popen(["curl", "-sS", "-N", "--max-time", "20",
                             f"http://127.0.0.1:{kubectl_proxy}{NS}/pods/web/proxy/stream"], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"
        started = time.monotonic()
        env.admin.ok("get", "--raw", f"{NS}/pods/web/proxy/release")  # now the backend sends the rest
        assert proc.stdout.readline() == b"second\n" and time.monotonic() - started < 10
    finally:
        proc.kill()
        proc.wait()



def test_kubectl_proxy_then_follow_a_rewritten_link(env: Env, kubectl_proxy: int) -> None:
    prefix = f"{NS}/services/web:http/proxy"
    page = curl(kubectl_proxy, f"{prefix}/html")
    found = re.search(r'<a href="([^"]*)">self</a>', page)
    assert found is not None and found.group(1) == f"{prefix}/landed"  # was http://127.245.64.2:PORT/landed
    assert curl(kubectl_proxy, found.group(1)) == "landed\n"
