"""The kubelet API's handlers over real TLS (AlwaysAllow + anonymous: the insecure flag defaults)."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.x509.oid import NameOID

from minikubelet.runtime_api import ExecResult
from minikubelet.server import USER, KubeletAPI, ServerSettings

from .conftest import Kubelet, KubeletFactory, Pki
from .fakes import FakeRuntime, PlainClient


async def test_healthz(kubelet: KubeletFactory) -> None:
    state: dict[str, str | None] = {"err": None}
    async with kubelet(syncloop_health=lambda: state["err"]) as k:
        for path in ("/healthz", "/healthz/ping", "/healthz/log", "/healthz/syncloop"):
            r = await k.call(path)
            assert (r.status, r.text) == (200, "ok"), path
        r = await k.call("/healthz?verbose")
        assert r.text == "[+]ping ok\n[+]log ok\n[+]syncloop ok\nhealthz check passed\n"
        state["err"] = "sync Loop took longer than 3m0s to complete"
        r = await k.call("/healthz")
        assert (r.status, r.text) == (500, "[+]ping ok\n[+]log ok\n[-]syncloop failed: reason withheld\n"
                                           "healthz check failed\n")
        r = await k.call("/healthz/syncloop")
        assert r.status == 500 and "took longer" in r.text
        assert (await k.call("/healthz/nope")).status == 404


async def test_pods_and_runningpods(kubelet: KubeletFactory, runtime: FakeRuntime) -> None:
    runtime.add_pod("kube-system", "done", "c", state="terminated")
    async with kubelet() as k:
        r = await k.call("/pods")
        assert r.status == 200 and r.headers["Content-Type"].startswith("application/json")
        doc = json.loads(r.body)
        assert (doc["kind"], doc["apiVersion"]) == ("PodList", "v1")
        assert sorted(p["metadata"]["name"] for p in doc["items"]) == ["done", "p1"]
        assert doc["items"][0]["status"]["phase"] == "Running"
        assert r.body.startswith(b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[{')  # Go's
        assert r.body.endswith(b"]}\n")  # json.Encoder: compact, newline-terminated
        raw = (await k.call("/runningpods/")).body
        assert raw.startswith(b'{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[') and raw.endswith(b"\n")
        running = json.loads(raw)["items"]
        assert running == [{"metadata": {"name": "p1", "namespace": "default", "uid": "uid-p1",
                                         "creationTimestamp": None},
                            "spec": {"containers": [{"name": "c1", "image": "busybox", "resources": {}},
                                                    {"name": "c2", "image": "busybox", "resources": {}}]},
                            "status": {}}]
        r = await k.call("/pods", "POST")
        assert (r.status, r.text, r.headers["Allow"]) == (405, "Method Not Allowed", "GET")
        assert (await k.call("/pods", "HEAD")).status == 405


async def test_configz_stats_metrics(kubelet: KubeletFactory, runtime: FakeRuntime) -> None:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(30)")
    runtime.container("default", "p1", "c1").pid = proc.pid
    try:
        async with kubelet(config={"kind": "KubeletConfiguration", "readOnlyPort": 10255}) as k:
            assert (await k.call("/configz")).body == \
                b'{"kubeletconfig":{"kind":"KubeletConfiguration","readOnlyPort":10255}}'  # json.Marshal
            raw = (await k.call("/stats/summary")).body
            assert raw.startswith(b'{\n "node": {\n  "nodeName": "node1",\n')  # go-restful's MarshalIndent
            assert raw.endswith(b"\n}")  # no trailing newline
            summary = json.loads(raw)
            node = summary["node"]
            assert node["nodeName"] == "node1" and node["cpu"]["usageCoreNanoSeconds"] > 0
            assert node["memory"]["workingSetBytes"] > 0 and node["startTime"].endswith("Z")
            (pod,) = summary["pods"]
            assert pod["podRef"] == {"name": "p1", "namespace": "default", "uid": "uid-p1"}
            (c1,) = pod["containers"]  # c2 has no pid: nothing measured
            assert c1["name"] == "c1" and c1["memory"]["workingSetBytes"] > 1_000_000
            assert c1["cpu"]["usageCoreNanoSeconds"] >= 0 and "usageNanoCores" in c1["cpu"]
            text = (await k.call("/metrics")).text
            assert 'kubelet_node_name{node="node1"} 1\n' in text
            assert "kubelet_running_pods 1\n" in text
            assert 'kubelet_running_containers{container_state="running"} 2\n' in text
            assert 'kubelet_http_requests_total{long_running="false",method="GET",path="configz",' \
                   'server_type="readwrite"} 1\n' in text
            assert "process_start_time_seconds " in text
            cadvisor = (await k.call("/metrics/cadvisor")).text
            assert 'container_memory_working_set_bytes{container="c1",id="/kubepods/poduid-p1/c1"' in cadvisor
            resource = (await k.call("/metrics/resource")).text
            assert 'pod_memory_working_set_bytes{namespace="default",pod="p1"} ' in resource
            assert "node_cpu_usage_seconds_total " in resource and "resource_scrape_error 0" in resource
    finally:
        proc.kill()
        await proc.wait()


async def test_run(kubelet: KubeletFactory, runtime: FakeRuntime) -> None:
    async with kubelet() as k:
        r = await k.call("/run/default/p1/c1?cmd=ls%20-l%20/tmp", "POST")
        assert (r.status, r.body) == (200, b"hello from run\n")
        assert r.headers["Content-Type"].startswith("application/json")  # as the real kubelet labels it
        assert runtime.runs[-1] == ("default", "p1", "c1", ["ls", "-l", "/tmp"])
        assert (await k.call("/run/default/p1/uid-p1/c2?cmd=true", "POST")).status == 200
        assert (await k.call("/run/default/p1/c1?cmd=ls", "GET")).status == 405
        r = await k.call("/run/default/nope/c1?cmd=ls", "POST")
        assert (r.status, r.text) == (404, "pod does not exist")
        r = await k.call("/run/default/p1/c9?cmd=ls", "POST")
        assert (r.status, r.text) == (500, 'container not found ("c9")')
        runtime.run_result = ExecResult(2, b"ls: /nope: No such file\n")
        r = await k.call("/run/default/p1/c1?cmd=ls%20/nope", "POST")
        assert (r.status, r.text) == (500, "command 'ls /nope' exited with 2: ls: /nope: No such file\n")
        runtime.run_error = FileNotFoundError(2, "No such file or directory", "nosuchprog")
        r = await k.call("/run/default/p1/c1?cmd=nosuchprog", "POST")
        assert r.status == 500 and "No such file or directory" in r.text and "Traceback" not in r.text


async def test_unknown_paths_and_crashing_runtime(kubelet: KubeletFactory, runtime: FakeRuntime) -> None:
    async with kubelet() as k:
        r = await k.call("/nope")
        assert (r.status, r.text) == (404, "404 page not found\n")
        assert (await k.call("/containerLogs/default/p1")).status == 404

        def boom() -> list[Any]:
            raise RuntimeError("secret internal detail")

        runtime.pods = boom  # type: ignore[method-assign]
        r = await k.call("/pods")
        assert r.status == 500 and "secret" not in r.text and "Traceback" not in r.text


@pytest.mark.parametrize("path", ["/run/default/p1/c1", "/containerLogs/default/p1/c1", "/runningpods/",
                                  "/exec/default/p1/c1", "/portForward/default/p1", "/logs/", "/debug/pprof/"])
async def test_debugging_handlers_disabled(kubelet: KubeletFactory, path: str) -> None:
    async with kubelet(enable_debugging_handlers=False) as k:
        for method in ("GET", "POST"):
            r = await k.call(path, method)
            assert (r.status, r.text) == (405, "Debug endpoints are disabled.\n")
        assert (await k.call("/configz")).status == 404  # configz is an auth-required (debug) handler
        assert (await k.call("/pods")).status == 200


async def test_read_only_port_has_no_auth_and_no_debug_handlers(kubelet: KubeletFactory) -> None:
    async with kubelet(anonymous_auth=False) as k:
        assert (await k.call("/pods")).status == 401
        r = await k.call("/pods", read_only=True, token="garbage")
        assert r.status == 200 and json.loads(r.body)["items"][0]["metadata"]["name"] == "p1"
        for path in ("/healthz", "/stats/summary", "/metrics", "/metrics/resource"):
            assert (await k.call(path, read_only=True)).status == 200, path
        r = await k.call("/containerLogs/default/p1/c1", read_only=True)
        assert (r.status, r.text) == (405, "Debug endpoints are disabled.\n")
        assert (await k.call("/run/default/p1/c1?cmd=id", "POST", read_only=True)).status == 405
        assert (await k.call("/configz", read_only=True)).status == 404
        assert 'server_type="readonly"' in (await k.call("/metrics", read_only=True)).text


async def test_read_only_port_zero_is_off(kubelet: KubeletFactory) -> None:
    async with kubelet(read_only_port=0) as k:
        assert k.api.read_only_port == 0 and k.api.port > 0


@pytest.mark.parametrize(("path", "location"), [
    ("/stats/../run/default/p1/c1?cmd=id", "/run/default/p1/c1?cmd=id"),
    ("//pods", "/pods"), ("/healthz/./ping", "/healthz/ping"), ("/logs/x/../", "/logs/"),
], ids=["dotdot", "double-slash", "dot", "trailing-slash"])
async def test_unclean_paths_redirect_before_auth(kubelet: KubeletFactory, path: str, location: str) -> None:
    async with kubelet(anonymous_auth=False) as k:
        r = await k.call(path, "POST", raw=True, redirects=False)
        assert (r.status, r.headers["Location"]) == (301, location)


async def test_node_logs(kubelet: KubeletFactory, tmp_path: Path) -> None:
    logdir = tmp_path / "varlog"
    (logdir / "pods").mkdir(parents=True)
    (logdir / "syslog").write_text("booted\n")
    (tmp_path / "secret").write_text("nope")
    async with kubelet() as k:
        r = await k.call("/logs/")
        assert (r.status, r.text) == (405, "logs endpoint is disabled.\n")
    async with kubelet(node_log_dir=str(logdir)) as k:
        listing = (await k.call("/logs/")).text
        assert '<a href="pods/">pods/</a>' in listing and '<a href="syslog">syslog</a>' in listing
        assert (await k.call("/logs/syslog")).text == "booted\n"
        for path in ("/logs/%2e%2e/secret", "/logs/..%2fsecret", "/logs/a/../../secret"):
            r = await k.call(path, raw=True, redirects=False)
            assert (r.status, r.headers["Location"]) == (301, "/secret"), path
            assert (await k.call(path, raw=True)).status == 404
        assert (await k.call("/logs/nothing")).status == 404


async def test_set_serving_cert_applies_to_new_handshakes(kubelet: KubeletFactory, pki: Pki) -> None:
    async def peer_cn(port: int) -> str:
        ctx = ssl.create_default_context(cafile=pki.serving_ca)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        await writer.wait_closed()
        cert = x509.load_der_x509_certificate(der)
        return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

    async with kubelet() as k:
        assert await peer_cn(k.api.port) == "node1"
        k.api.set_serving_cert(*pki.serving2)
        assert await peer_cn(k.api.port) == "node1-rotated"
        assert (await k.call("/healthz")).status == 200


async def test_add_route_for_streaming_handlers(kubelet: KubeletFactory, pki: Pki, runtime: FakeRuntime) -> None:
    async def exec_(request: web.Request) -> web.Response:
        return web.Response(text=f"exec as {request[USER].name} in {request.match_info['podID']}")

    settings = ServerSettings(node_name="node1", address="127.0.0.1", port=0, read_only_port=0,
                              tls_cert_file=pki.serving[0], tls_private_key_file=pki.serving[1],
                              client_ca_file=pki.client_ca, anonymous_auth=False)
    api = KubeletAPI(settings, runtime, None, {})
    with pytest.raises(ValueError, match="only debugging handlers"):
        api.add_route("GET", "/pods/{x}", exec_)
    # /exec and /attach are built in now (minikubelet.streams); /debug/pprof/ is still free to add
    api.add_route(frozenset({"GET", "POST"}), "/debug/pprof/{podID}", exec_)
    await api.start()
    try:
        k = Kubelet(api, pki)
        assert (await k.call("/debug/pprof/p1")).status == 401
        r = await k.call("/debug/pprof/p1", "POST", cert=pki.alice)
        assert (r.status, r.text) == (200, "exec as alice in p1")
        with pytest.raises(RuntimeError):
            api.add_route("GET", "/attach/{a}", exec_)
    finally:
        await api.stop()


@pytest.mark.parametrize(("changes", "match"), [
    ({"authorization_mode": "RBAC"}, "--authorization-mode must be one of AlwaysAllow, Webhook"),
    ({"tls_cert_file": ""}, "--tls-cert-file and --tls-private-key-file are required"),
    ({"node_name": ""}, "node_name is required"),
    ({"read_only_port": 70000}, "--read-only-port must be within"),
], ids=["mode", "tls", "node", "port"])
def test_settings_refuse_nonsense(changes: dict[str, Any], match: str) -> None:
    base = {"node_name": "n", "tls_cert_file": "c", "tls_private_key_file": "k"}
    with pytest.raises(ValueError, match=match):
        ServerSettings(**{**base, **changes})


@pytest.mark.parametrize("changes", [{"webhook_authn": True}, {"authorization_mode": "Webhook"}],
                         ids=["authn", "authz"])
def test_webhooks_without_a_client_refuse_to_start(pki: Pki, runtime: FakeRuntime, changes: dict[str, Any]) -> None:
    settings = ServerSettings(node_name="n", tls_cert_file=pki.serving[0], tls_private_key_file=pki.serving[1],
                              **changes)
    with pytest.raises(ValueError, match="needs an apiserver client"):
        KubeletAPI(settings, runtime, None, {})
    KubeletAPI(settings, runtime, PlainClient("http://127.0.0.1:1"), {})
