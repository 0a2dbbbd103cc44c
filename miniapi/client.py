"""A small async Kubernetes REST client for the control-plane components and the kubelet.

It speaks to the apiserver's secure port like client-go does: TLS verified against the cluster CA from
the kubeconfig, a client certificate or a bearer token as credential, JSON bodies, and watches as
newline-delimited JSON. Errors come back as :class:`ClientError` carrying the Status ``code``,
``reason`` and ``message``.

    async with KubeClient.from_kubeconfig("admin.conf") as kc:
        pods = await kc.list("pods", namespace="default")
        async for event in kc.watch("pods", namespace="default", resource_version=pods["metadata"]
                                    ["resourceVersion"]):
            ...
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

from miniapi import resources
from pki.files import read_client_config
from pki.kubeconfig import ClientCertData, Token

Obj = dict[str, Any]


class ClientError(Exception):
    def __init__(self, code: int, reason: str, message: str, status: Obj | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code, self.reason, self.message, self.status = code, reason, message, status or {}


def ssl_context_for(ca_pem: bytes | None, cert_pem: bytes | None = None, key_pem: bytes | None = None
                    ) -> ssl.SSLContext:
    """A verifying client context; in-memory cert/key go through a private temp file (ssl wants paths)."""
    ctx = ssl.create_default_context(cadata=ca_pem.decode() if ca_pem else None)
    if ca_pem is None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert_pem is not None and key_pem is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "client.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(cert_pem + b"\n" + key_pem)
            ctx.load_cert_chain(path)
    return ctx


def resource_path(resource: str, namespace: str = "", name: str = "", subresource: str = "",
                  group: str = "") -> str:
    """``/api/v1/namespaces/NS/pods/NAME/status`` from the resource catalogue."""
    rt = resources.lookup(group, resource)
    if rt is None:
        raise ValueError(f"unknown resource {resource!r} in group {group!r}")
    base = f"/apis/{rt.group}/{rt.version}" if rt.group else "/api/v1"
    if rt.namespaced and namespace:
        base += f"/namespaces/{namespace}"
    path = f"{base}/{rt.resource}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


class KubeClient:
    def __init__(self, server: str, ssl_ctx: ssl.SSLContext, token: str | None = None,
                 user_agent: str = "miniapi-client/v1.37.0", timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self._ssl = ssl_ctx
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], **kwargs: Any) -> KubeClient:
        cfg = read_client_config(Path(path))
        cred, token = cfg.credential, None
        cert = key = None
        if isinstance(cred, ClientCertData):
            cert, key = cred.cert_pem, cred.key_pem
        elif isinstance(cred, Token):
            token = cred.token
        return cls(cfg.server, ssl_context_for(cfg.ca_pem, cert, key), token, **kwargs)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=16), headers=self._headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- raw --------------------------------------------------------------------------------------
    async def request(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        async with self.session.request(method, self.server + path, data=data, params=params,
                                        headers=headers, timeout=timeout) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise _error(resp.status, raw)
            if resp.content_type == "application/json" and raw:
                return json.loads(raw)
            return raw.decode(errors="replace")

    # -- typed verbs --------------------------------------------------------------------------------
    async def get(self, resource: str, name: str, namespace: str = "", group: str = "",
                  subresource: str = "") -> Obj:
        result: Obj = await self.request("GET", resource_path(resource, namespace, name, subresource, group))
        return result

    async def list(self, resource: str, namespace: str = "", group: str = "", **params: str) -> Obj:
        result: Obj = await self.request("GET", resource_path(resource, namespace, group=group), params=params)
        return result

    async def create(self, resource: str, obj: Obj, namespace: str = "", group: str = "",
                     name: str = "", subresource: str = "") -> Obj:
        path = resource_path(resource, namespace, name, subresource, group)
        result: Obj = await self.request("POST", path, obj)
        return result

    async def update(self, resource: str, obj: Obj, namespace: str = "", group: str = "",
                     subresource: str = "") -> Obj:
        name = obj["metadata"]["name"]
        result: Obj = await self.request("PUT", resource_path(resource, namespace, name, subresource, group), obj)
        return result

    async def patch(self, resource: str, name: str, patch: Any, namespace: str = "", group: str = "",
                    subresource: str = "", patch_type: str = "application/merge-patch+json") -> Obj:
        path = resource_path(resource, namespace, name, subresource, group)
        result: Obj = await self.request("PATCH", path, patch, content_type=patch_type)
        return result

    async def delete(self, resource: str, name: str, namespace: str = "", group: str = "",
                     grace_period_seconds: int | None = None) -> Any:
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds  # type: ignore[assignment]
        return await self.request("DELETE", resource_path(resource, namespace, name, group=group), body)

    async def watch(self, resource: str, namespace: str = "", group: str = "", resource_version: str = "",
                    timeout_seconds: int = 300, **params: str) -> AsyncIterator[Obj]:
        """Yield watch events ({"type", "object"}) until the server ends the stream; an ERROR event
        (e.g. 410 Expired) raises ClientError so the caller re-lists."""
        query = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds),
                 **params}
        if resource_version:
            query["resourceVersion"] = resource_version
        timeout = aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30)
        path = resource_path(resource, namespace, group=group)
        async with self.session.get(self.server + path, params=query, timeout=timeout) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.read())
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("type") == "ERROR":
                    status = event.get("object") or {}
                    raise ClientError(int(status.get("code", 500)), status.get("reason", ""),
                                      status.get("message", ""), status)
                yield event


def _error(code: int, raw: bytes) -> ClientError:
    try:
        status = json.loads(raw)
    except ValueError:
        return ClientError(code, "", raw.decode(errors="replace")[:200])
    if not isinstance(status, dict):
        return ClientError(code, "", str(status)[:200])
    return ClientError(code, str(status.get("reason", "")), str(status.get("message", "")), status)
