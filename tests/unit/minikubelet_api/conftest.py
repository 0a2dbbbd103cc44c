"""Fixtures: a test-time PKI, a FakeRuntime, and a KubeletAPI on 127.0.0.1 over real TLS."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl

from minikubelet.server import KubeletAPI, ServerSettings
from tests.unit.authn.certs import NOW, SERVER_AUTH, issue, make_ca

from .fakes import FakeRuntime

CLIENT_CA = make_ca("kubelet-client-ca")
SERVING_CA = make_ca("kubelet-serving-ca")
OTHER_CA = make_ca("other-ca")
TIMEOUT = aiohttp.ClientTimeout(total=10)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Pki:
    dir: Path
    serving: tuple[str, str]
    serving2: tuple[str, str]
    client_ca: str
    serving_ca: str
    alice: tuple[str, str]
    apiserver: tuple[str, str]
    other_ca: tuple[str, str]
    expired: tuple[str, str]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("kubelet-pki")
    return Pki(
        dir=d,
        serving=issue(SERVING_CA, "node1", eku=SERVER_AUTH, ips=["127.0.0.1"]).write(d, "serving"),
        serving2=issue(SERVING_CA, "node1-rotated", eku=SERVER_AUTH, ips=["127.0.0.1"]).write(d, "serving2"),
        client_ca=CLIENT_CA.write(d, "client-ca")[0],
        serving_ca=SERVING_CA.write(d, "serving-ca")[0],
        alice=issue(CLIENT_CA, "alice", ["devs"]).write(d, "alice"),
        apiserver=issue(CLIENT_CA, "kube-apiserver-kubelet-client", ["system:masters"]).write(d, "apiserver"),
        other_ca=issue(OTHER_CA, "mallory", ["system:masters"]).write(d, "mallory"),
        expired=issue(CLIENT_CA, "alice", not_before=NOW - dt.timedelta(days=9),
                      not_after=NOW - dt.timedelta(days=1)).write(d, "expired"),
    )


@pytest.fixture
def runtime(tmp_path: Path) -> FakeRuntime:
    rt = FakeRuntime(tmp_path)
    rt.add_pod("default", "p1", "c1", "c2")
    return rt


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class Kubelet:
    api: KubeletAPI
    pki: Pki

    def ctx(self, cert: tuple[str, str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.pki.serving_ca)
        if cert:
            ctx.load_cert_chain(*cert)
        return ctx

    async def call(self, path: str, method: str = "GET", *, cert: tuple[str, str] | None = None,
                   token: str | None = None, read_only: bool = False,
                   headers: dict[str, str] | None = None, raw: bool = False, redirects: bool = True) -> Reply:
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if read_only:
            url, conn = f"http://127.0.0.1:{self.api.read_only_port}{path}", aiohttp.TCPConnector()
        else:
            url = f"https://127.0.0.1:{self.api.port}{path}"
            conn = aiohttp.TCPConnector(ssl=self.ctx(cert))
        target = yarl.URL(url, encoded=True) if raw else url  # raw: the path bytes exactly as given
        async with aiohttp.ClientSession(connector=conn) as session, \
                session.request(method, target, headers=hdrs, timeout=TIMEOUT,
                                allow_redirects=redirects) as resp:
            return Reply(resp.status, dict(resp.headers), await resp.read())


KubeletFactory = Callable[..., contextlib.AbstractAsyncContextManager[Kubelet]]


@pytest.fixture
def kubelet(pki: Pki, runtime: FakeRuntime) -> KubeletFactory:
    @contextlib.asynccontextmanager
    async def make(client: Any = None, config: dict[str, Any] | None = None, **changes: Any
                   ) -> AsyncIterator[Kubelet]:
        extra = {k: changes.pop(k) for k in ("syncloop_health", "clock") if k in changes}
        settings = replace(ServerSettings(node_name="node1", address="127.0.0.1", port=0,
                                          read_only_port=free_port(), tls_cert_file=pki.serving[0],
                                          tls_private_key_file=pki.serving[1], client_ca_file=pki.client_ca),
                           **changes)
        api = KubeletAPI(settings, runtime, client, config or {"kind": "KubeletConfiguration"}, **extra)
        await api.start()
        try:
            yield Kubelet(api, pki)
        finally:
            await api.stop()

    return make
