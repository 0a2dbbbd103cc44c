"""In-process apiservers over real TLS: PKI made at test time, ``async with APIServer(cfg)``, and an
aiohttp client presenting the admin client certificate (or a bearer token, or nothing).

Two ways to hold a server:

* :func:`running` - an async context for ``async def`` tests (one server per test);
* :class:`ServerThread` - a server on its own event loop in a thread, driven synchronously, so that
  many small cases (and hypothesis) can share one server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yarl

from miniapi.config import Config, validate
from miniapi.server import APIServer
from miniapi.tlsconfig import client_ssl_context
from pki.files import read_client_config
from pki.init import init_pki
from pki.kubeconfig import ClientCertData

ISSUER = "https://kubernetes.default.svc.cluster.local"
TIMEOUT = aiohttp.ClientTimeout(total=20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Pki:
    root: Path

    @property
    def ca(self) -> str:
        return str(self.root / "pki" / "ca.crt")

    @property
    def admin_cert(self) -> str:
        return str(self.root / "admin-client.crt")

    @property
    def admin_key(self) -> str:
        return str(self.root / "admin-client.key")

    def token(self, user: str) -> str:
        for line in (self.root / "tokens.csv").read_text().splitlines():
            parts = line.split(",")
            if len(parts) >= 2 and parts[1] == user:
                return parts[0]
        raise KeyError(user)

    def config(self, **changes: Any) -> Config:
        p = self.root / "pki"
        cfg = Config(secure_port=free_port(), bind_address="127.0.0.1",
                     tls_cert_file=str(p / "apiserver.crt"), tls_private_key_file=str(p / "apiserver.key"),
                     client_ca_file=str(p / "ca.crt"), token_auth_file=str(self.root / "tokens.csv"),
                     service_account_signing_key_file=str(p / "sa.key"),
                     service_account_issuers=(ISSUER,), authorization_mode=("Node", "RBAC"),
                     enable_bootstrap_token_auth=True, enable_admission_plugins=("NodeRestriction",))
        return validate(replace(cfg, **changes))

    def ssl(self, client_cert: bool = True) -> ssl.SSLContext:
        if client_cert:
            return client_ssl_context(self.ca, self.admin_cert, self.admin_key)
        return client_ssl_context(self.ca)


def make_pki(root: Path) -> Pki:
    init_pki(root, apiserver_url="https://127.0.0.1:6443", key_type="ec")
    cred = read_client_config(root / "admin.conf").credential
    assert isinstance(cred, ClientCertData)
    (root / "admin-client.crt").write_bytes(cred.cert_pem)
    (root / "admin-client.key").write_bytes(cred.key_pem)
    (root / "admin-client.key").chmod(0o600)
    return Pki(root)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def is_status(self) -> bool:
        """A Kubernetes Status object whose code matches the HTTP status."""
        try:
            doc = self.json
        except ValueError:
            return False
        return isinstance(doc, dict) and doc.get("kind") == "Status" and doc.get("apiVersion") == "v1" \
            and doc.get("code") == self.status and isinstance(doc.get("message"), str) \
            and self.headers.get("Content-Type", "").startswith("application/json")


@dataclass
class Http:
    """Requests against one server; ``raw=True`` sends the path bytes exactly as given."""

    url: str
    session: aiohttp.ClientSession
    default_headers: dict[str, str] = field(default_factory=dict)

    async def call(self, method: str, path: str, body: Any = None, *, content_type: str | None = None,
                   headers: Mapping[str, str] | None = None, raw: bool = False,
                   read_ok_body: bool = True) -> Reply:
        hdrs = {**self.default_headers, **(headers or {})}
        data: bytes | None
        if body is None or isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
            content_type = content_type or "application/json"
        if content_type is not None:
            hdrs["Content-Type"] = content_type
        url = yarl.URL(self.url + path, encoded=True) if raw else self.url + path
        skip = () if content_type is not None else ("Content-Type",)
        async with self.session.request(method, url, data=data, headers=hdrs, skip_auto_headers=skip,
                                        timeout=TIMEOUT) as resp:
            body_bytes = await resp.read() if read_ok_body or resp.status >= 400 else b""
            return Reply(resp.status, dict(resp.headers), body_bytes)

    async def get_json(self, path: str) -> Any:
        reply = await self.call("GET", path)
        assert reply.status == 200, reply.body
        return reply.json


@contextlib.asynccontextmanager
async def client(url: str, ctx: ssl.SSLContext, token: str | None = None) -> AsyncIterator[Http]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        yield Http(url, session, headers)


@contextlib.asynccontextmanager
async def running(cfg: Config, pki: Pki) -> AsyncIterator[tuple[APIServer, Http]]:
    async with APIServer(cfg) as srv, client(srv.url, pki.ssl()) as http:
        await default_serviceaccount(http)
        yield srv, http


async def default_serviceaccount(http: Http, namespace: str = "default") -> None:
    """The controller-manager's serviceaccount controller is not running in-process: stand in for it."""
    reply = await http.call("POST", f"/api/v1/namespaces/{namespace}/serviceaccounts",
                            {"metadata": {"name": "default"}})
    assert reply.status in (201, 409), reply.body


class ServerThread:
    """One APIServer on a private event loop; :meth:`call` drives it from synchronous tests."""

    def __init__(self, cfg: Config, pki: Pki) -> None:
        self.cfg, self.pki = cfg, pki
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._stack = contextlib.AsyncExitStack()
        self.server: APIServer
        self.admin: Http
        self.anonymous: Http

    def __enter__(self) -> ServerThread:
        self.thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.server = await self._stack.enter_async_context(APIServer(self.cfg))
        self.admin = await self._stack.enter_async_context(client(self.server.url, self.pki.ssl()))
        self.anonymous = await self._stack.enter_async_context(
            client(self.server.url, self.pki.ssl(client_cert=False)))
        await default_serviceaccount(self.admin)

    def __exit__(self, *exc: object) -> None:
        self.run(self._stack.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, method: str, path: str, body: Any = None, *, anonymous: bool = False,
             **kw: Any) -> Reply:
        http = self.anonymous if anonymous else self.admin
        return self.run(http.call(method, path, body, **kw))

    def raw(self, request: bytes, *, client_cert: bool = True, limit: int = 1 << 16) -> bytes:
        """Send bytes on a fresh TLS connection; return what came back before close (or 10 s)."""
        return self.run(raw_exchange(self.server.port, self.pki.ssl(client_cert), request, limit))


async def raw_exchange(port: int, ctx: ssl.SSLContext, request: bytes, limit: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="127.0.0.1")
    try:
        writer.write(request)
        await writer.drain()
        chunks: list[bytes] = []
        with contextlib.suppress(TimeoutError, ConnectionError, ssl.SSLError):
            async with asyncio.timeout(10):
                while sum(map(len, chunks)) < limit and (chunk := await reader.read(65536)):
                    chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def parse_raw(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return Reply(status, headers, body)


@pytest.fixture
def server_thread(pki: Pki) -> Iterator[ServerThread]:
    with ServerThread(pki.config(), pki) as st:
        yield st
