"""A real aiohttp TLS server with server_ssl_context: bad client certificates reach the authenticator.

The handshake must succeed for a good certificate, one from another CA, an expired one and none at
all (Go's tls.RequestClientCert); the handler sees the leaf DER and X509Authenticator decides.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from miniapi import tlsconfig
from miniapi.authn.base import AuthenticationError, Credentials
from miniapi.authn.x509 import X509Authenticator

from .certs import NOW, SERVER_AUTH, issue, make_ca

CLIENT_CA = make_ca("client-ca")
SERVING_CA = make_ca("serving-ca")
OTHER_CA = make_ca("other-ca")
AUTHN = web.AppKey("authn", X509Authenticator)
TLS_VERSIONS = pytest.mark.parametrize("tls", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3],
                                      ids=["tls1.2", "tls1.3"])


async def _whoami(request: web.Request) -> web.Response:
    peer = tlsconfig.peer_certs_of(request)
    authenticator = request.app[AUTHN]
    try:
        response = await authenticator.authenticate(Credentials(peer_certs=peer))
    except AuthenticationError as e:
        return web.json_response({"certs": len(peer), "error": str(e)}, status=401)
    user = response.user.name if response else None
    return web.json_response({"certs": len(peer), "user": user, "alpn": request.transport.get_extra_info(
        "ssl_object").selected_alpn_protocol()})


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, tuple[str, str]]:
    files = {
        "serving": issue(SERVING_CA, "apiserver", eku=SERVER_AUTH,
                         ips=["127.0.0.1"]).write(tmp_path, "serving"),
        "good": issue(CLIENT_CA, "alice", ["devs"]).write(tmp_path, "good"),
        "other-ca": issue(OTHER_CA, "mallory", ["system:masters"]).write(tmp_path, "other"),
        "expired": issue(CLIENT_CA, "alice", not_before=NOW - dt.timedelta(days=9),
                         not_after=NOW - dt.timedelta(days=1)).write(tmp_path, "expired"),
    }
    files["client-ca"] = (CLIENT_CA.write(tmp_path, "client-ca")[0], "")
    files["serving-ca"] = (SERVING_CA.write(tmp_path, "serving-ca")[0], "")
    return files


async def _serve(ctx: ssl.SSLContext) -> AsyncIterator[int]:
    app = web.Application()
    app[AUTHN] = X509Authenticator([CLIENT_CA.cert])
    app.router.add_get("/whoami", _whoami)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


@pytest.fixture
async def server(pki: dict[str, tuple[str, str]]) -> AsyncIterator[int]:
    ctx = tlsconfig.server_ssl_context(*pki["serving"], client_ca_file=pki["client-ca"][0])
    async for port in _serve(ctx):
        yield port


async def _get(port: int, pki: dict[str, tuple[str, str]], client: str | None,
               tls: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED) -> tuple[int, dict]:
    cert, key = pki[client] if client else (None, None)
    ctx = tlsconfig.client_ssl_context(ca_file=pki["serving-ca"][0], cert_file=cert, key_file=key)
    ctx.maximum_version = tls
    async with aiohttp.ClientSession() as session:
        async with session.get(f"https://127.0.0.1:{port}/whoami", ssl=ctx) as resp:
            return resp.status, await resp.json()


def test_ctypes_request_client_cert_is_active(pki: dict[str, tuple[str, str]],
                                             caplog: pytest.LogCaptureFixture) -> None:
    ctx = tlsconfig.server_ssl_context(*pki["serving"], client_ca_file=pki["client-ca"][0])
    assert "falling back" not in caplog.text
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tlsconfig._libssl is not None  # the ctypes path, not the fallback


@TLS_VERSIONS
async def test_good_certificate_authenticates(server: int, pki: dict[str, tuple[str, str]],
                                              tls: ssl.TLSVersion) -> None:
    status, body = await _get(server, pki, "good", tls)
    assert (status, body) == (200, {"certs": 1, "user": "alice", "alpn": "http/1.1"})


@TLS_VERSIONS
@pytest.mark.parametrize("client,reason", [
    ("other-ca", "x509: certificate signed by unknown authority"),
    ("expired", "x509: certificate has expired or is not yet valid: current time"),
], ids=["wrong-ca", "expired"])
async def test_bad_certificate_completes_handshake_then_401(server: int, pki: dict[str, tuple[str, str]],
                                                            client: str, reason: str,
                                                            tls: ssl.TLSVersion) -> None:
    status, body = await _get(server, pki, client, tls)
    assert status == 401 and body["certs"] == 1
    assert reason in body["error"]


async def test_no_certificate_is_anonymous_to_x509(server: int, pki: dict[str, tuple[str, str]]) -> None:
    status, body = await _get(server, pki, None)
    assert (status, body["certs"], body["user"]) == (200, 0, None)


async def test_no_client_ca_means_no_certificate_requested(pki: dict[str, tuple[str, str]]) -> None:
    ctx = tlsconfig.server_ssl_context(*pki["serving"])
    assert ctx.verify_mode == ssl.CERT_NONE
    async for port in _serve(ctx):
        status, body = await _get(port, pki, "good")
        assert (status, body["certs"]) == (200, 0)


async def test_fallback_rejects_bad_certificate_in_handshake(pki: dict[str, tuple[str, str]],
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(tlsconfig, "request_client_cert", lambda ctx, ca: False)
    ctx = tlsconfig.server_ssl_context(*pki["serving"], client_ca_file=pki["client-ca"][0])
    assert "falling back to CERT_OPTIONAL" in caplog.text
    async for port in _serve(ctx):
        assert (await _get(port, pki, "good"))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await _get(port, pki, "other-ca")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
async def test_certificate_request_names_the_client_ca(server: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"127.0.0.1:{server}", "-tls1_2",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    text = out.decode(errors="replace")
    assert "Acceptable client certificate CA names" in text
    assert "CN = client-ca" in text.split("Acceptable client certificate CA names")[1].splitlines()[1]


async def test_peer_certs_of_without_transport() -> None:
    class Plain:
        transport = None
    assert tlsconfig.peer_certs_of(Plain()) == ()


def test_serving_context_refuses_renegotiation(pki: dict[str, tuple[str, str]]) -> None:
    ctx = tlsconfig.server_ssl_context(*pki["serving"], client_ca_file=pki["client-ca"][0])
    assert ctx.options & ssl.OP_NO_RENEGOTIATION


async def test_peer_chain_is_read_once_per_connection(server: int, pki: dict[str, tuple[str, str]],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[object] = []
    real = tlsconfig._peer_chain

    def counting(transport: object) -> tuple[bytes, ...]:
        reads.append(transport)
        return real(transport)
    monkeypatch.setattr(tlsconfig, "_peer_chain", counting)
    users = []
    for client in ("good", None, "other-ca"):  # one keep-alive connection each, three requests on it
        cert, key = pki[client] if client else (None, None)
        ctx = tlsconfig.client_ssl_context(ca_file=pki["serving-ca"][0], cert_file=cert, key_file=key)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=1)) as session:
            for _ in range(3):
                async with session.get(f"https://127.0.0.1:{server}/whoami") as resp:
                    users.append((resp.status, (await resp.json()).get("user")))
    assert users == [(200, "alice")] * 3 + [(200, None)] * 3 + [(401, None)] * 3
    assert len(reads) == 3 and len(set(map(id, reads))) == 3
