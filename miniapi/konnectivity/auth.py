"""How the proxy server decides that an agent may serve tunnels: mTLS, or a service-account token.

1. **mTLS** (no ``--authentication-audience``): the agent port requires a client certificate that
   chains to ``--cluster-ca-cert``; the TLS handshake already refused anything else.
2. **Token** (``--authentication-audience``, with ``--kubeconfig``, ``--agent-namespace`` and
   ``--agent-service-account``): the HELLO carries ``authorization: Bearer <token>`` (the agent's
   projected token, audience ``system:konnectivity-server``). The server sends a TokenReview with
   ``spec.audiences = [audience]`` to the apiserver and accepts only
   ``system:serviceaccount:<namespace>:<service-account>``. A certificate is then optional.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from miniapi.client import ClientError, KubeClient
from miniapi.konnectivity.codec import Hello

if TYPE_CHECKING:
    from miniapi.konnectivity.server import ServerOptions

log = logging.getLogger("miniapi.konnectivity.server")


class Authenticator:
    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.token_mode = bool(options.authentication_audience)
        self._client: KubeClient | None = None

    @property
    def client(self) -> KubeClient:
        if self._client is None:
            self._client = KubeClient.from_kubeconfig(self.options.kubeconfig, user_agent="konnectivity-server")
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def authenticate(self, hello: Hello, transport: asyncio.BaseTransport | None) -> str:
        """The agent's identity, or PermissionError with the reason."""
        if not self.token_mode:
            cert: Any = transport.get_extra_info("peercert") if transport is not None else None
            if not cert:
                raise PermissionError("client certificate required")
            subject = dict(x[0] for x in cert.get("subject", ()))
            return f"x509:{subject.get('commonName', '?')}"
        scheme, _, token = hello.get("authorization").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise PermissionError("Failed to authenticate request: no bearer token in the agent's metadata")
        review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": token, "audiences": [self.options.authentication_audience]}}
        try:
            result = await self.client.create("tokenreviews", review, group="authentication.k8s.io")
        except (ClientError, OSError) as exc:
            raise PermissionError(f"Failed to authenticate request: TokenReview failed: {exc}") from exc
        status = result.get("status") or {}
        if not status.get("authenticated"):
            raise PermissionError(f"Failed to authenticate request: {status.get('error') or 'token not authenticated'}")
        user = str((status.get("user") or {}).get("username", ""))
        want = f"system:serviceaccount:{self.options.agent_namespace}:{self.options.agent_service_account}"
        if user != want:
            raise PermissionError(f"Failed to authenticate request: {user} is not {want}")
        log.info("agent authenticated by token user=%s", user)
        return user
