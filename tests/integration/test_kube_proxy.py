"""minikubeproxy against an in-process apiserver: the ``kubernetes`` service's VIP reaches the apiserver
(TLS verified against the VIP as IP SAN), a Service's VIP reaches its endpoints and follows changes, in
both modes (iptables only where this process may change netfilter).

Each run uses its own loopback service range (127.97.X.0/24) and, for iptables, its own chain prefix,
so a running local cluster on the same host is not disturbed.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from miniapi.client import KubeClient
from minikubeproxy.iptables import IptablesBackend, run
from minikubeproxy.proxier import Backend, Proxier
from minikubeproxy.rules import Endpoint, ServicePort
from minikubeproxy.userspace import UserspaceBackend
from pki.files import read_client_config
from pki.init import init_pki
from pki.kubeconfig import ClientCertData
from tests.e2e.cluster import free_port, free_service_cidr
from tests.integration import proxy_backend
from tests.integration.conftest import Pki, running

BACKEND_IPS = ("127.245.62.2", "127.245.62.3")


@pytest.fixture(scope="module")
def cidr() -> str:
    return free_service_cidr()


@pytest.fixture(scope="module")
def vip_pki(tmp_path_factory: pytest.TempPathFactory, cidr: str) -> Pki:
    root = tmp_path_factory.mktemp("pki-vip")
    init_pki(root, apiserver_url="https://127.0.0.1:6443", key_type="ec", service_cidr=cidr)
    cred = read_client_config(root / "admin.conf").credential
    assert isinstance(cred, ClientCertData)
    (root / "admin-client.crt").write_bytes(cred.cert_pem)
    (root / "admin-client.key").write_bytes(cred.key_pem)
    return Pki(root)


def iptables_usable() -> bool:
    return os.geteuid() == 0 and shutil.which("iptables") is not None and \
        asyncio.run(IptablesBackend("KTST").available()) is None


IPTABLES = iptables_usable()
NEEDS_IPTABLES = pytest.mark.skipif(not IPTABLES, reason="needs root and a working iptables")
MODES = [pytest.param("userspace", id="userspace"), pytest.param("iptables", id="iptables", marks=NEEDS_IPTABLES)]


def prefix() -> str:
    """A chain prefix of this run: 4 characters at most (KUBE-SVC-<16> is iptables' 28-character limit)."""
    return "T" + "".join(random.choices("ABCDEFGHJKLMNPQRSTUVWXYZ", k=3))


@dataclass
class Env:
    proxier: Proxier
    admin: KubeClient
    vip: str
    pki: Pki
    ports: list[int]


@pytest.fixture(params=MODES)
async def env(request: pytest.FixtureRequest, vip_pki: Pki, cidr: str) -> AsyncIterator[Env]:
    if request.param == "userspace" and os.geteuid() != 0:
        pytest.skip("the kubernetes VIP listens on 443, which needs root")
    ports = [free_port(ip) for ip in BACKEND_IPS]
    runners = [await proxy_backend.start(ip, port) for ip, port in zip(BACKEND_IPS, ports, strict=True)]
    cfg = vip_pki.config(service_cluster_ip_range=cidr)
    backend: Backend = UserspaceBackend() if request.param == "userspace" else \
        IptablesBackend(prefix())
    async with running(cfg, vip_pki) as (srv, http), KubeClient(srv.url, vip_pki.ssl()) as admin:
        proxier = Proxier(admin, backend, min_sync_period=0.05)
        task = asyncio.create_task(proxier.run())
        try:
            yield Env(proxier, admin, cidr.replace(".0/24", ".1"), vip_pki, ports)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await backend.cleanup()
            for runner in runners:
                await runner.cleanup()


async def synced(env: Env, until: float = 10) -> None:
    """Wait for the proxier to apply what it currently knows."""
    async with asyncio.timeout(until):
        while env.proxier._last != env.proxier.wanted() or not env.proxier.synced_once.is_set():
            await asyncio.sleep(0.02)


async def test_kubernetes_vip_reaches_the_apiserver_with_a_verified_certificate(env: Env) -> None:
    await synced(env)
    ctx = ssl.create_default_context(cafile=env.pki.ca)  # verifies the VIP against the serving cert's SANs
    ctx.load_cert_chain(env.pki.admin_cert, env.pki.admin_key)
    async with aiohttp.ClientSession() as s, s.get(f"https://{env.vip}:443/api/v1/namespaces/default/endpoints/"
                                                   "kubernetes", ssl=ctx) as resp:
        assert resp.status == 200
        ep = await resp.json()
    assert ep["subsets"][0]["addresses"] == [{"ip": "127.0.0.1"}]


async def test_service_vip_follows_its_endpoints(env: Env) -> None:
    await env.admin.create("services", {"metadata": {"name": "web"}, "spec": {
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}, "default")
    svc = await env.admin.get("services", "web", "default")
    vip = svc["spec"]["clusterIP"]
    subset = {"addresses": [{"ip": BACKEND_IPS[0]}], "ports": [{"name": "http", "port": env.ports[0]}]}
    await env.admin.create("endpoints", {"metadata": {"name": "web"}, "subsets": [subset]}, "default")
    await synced(env)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://{vip}/hello") as resp:
            body = await resp.json()
        assert body["path"] == "/hello"
        assert body["host"] == f"{vip}"  # the client spoke to the VIP; the bytes went to the endpoint
        ep = await env.admin.get("endpoints", "web", "default")
        ep["subsets"] = [{"addresses": [{"ip": BACKEND_IPS[1]}], "ports": [{"name": "http", "port": env.ports[1]}]}]
        await env.admin.update("endpoints", ep, "default")
        await synced(env)
        async with s.get(f"http://{vip}/again", headers={"Connection": "close"}) as resp:
            assert resp.status == 200
        ep = await env.admin.get("endpoints", "web", "default")
        ep["subsets"] = []
        await env.admin.update("endpoints", ep, "default")
        await synced(env)
        with pytest.raises(aiohttp.ClientError):
            async with s.get(f"http://{vip}/gone", headers={"Connection": "close"}) as resp:
                await resp.read()


@NEEDS_IPTABLES
async def test_iptables_rules_are_removed_on_cleanup(cidr: str) -> None:
    mine = prefix()
    backend = IptablesBackend(mine)
    await backend.sync([ServicePort("default/x:http", cidr.replace(".0/24", ".9"), 80, "TCP",
                                    (Endpoint(BACKEND_IPS[0], 1),))])
    table = await run("iptables", "-w", "-t", "nat", "-S")
    assert f"-N {mine}-SERVICES" in table and f"-A OUTPUT -m comment --comment \"kubernetes service portals\" " \
        f"-j {mine}-SERVICES" in table
    await backend.cleanup()
    assert mine not in await run("iptables", "-w", "-t", "nat", "-S")

