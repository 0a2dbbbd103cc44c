"""WithAuthentication: run the union authenticator; a failure is 401 ``Unauthorized``, never anonymous.

The Authorization header is consumed here (as the real filter does) so no handler can forward it.
"""

from __future__ import annotations

import logging

from aiohttp import web

from miniapi.authn.base import AuthenticationError, Authenticator, Credentials
from miniapi.errors import unauthorized
from miniapi.filters import Filter, Handler
from miniapi.filters.keys import AUTH, AUTHN_ERROR, USER
from miniapi.tlsconfig import peer_certs_of

log = logging.getLogger("miniapi.authn")


def with_authentication(authenticator: Authenticator) -> Filter:
    def wrap(handler: Handler) -> Handler:
        async def authenticate(request: web.Request) -> web.StreamResponse:
            creds = Credentials(request.headers.get("Authorization"), peer_certs_of(request))
            try:
                resp = await authenticator.authenticate(creds)
            except AuthenticationError as exc:
                request[AUTHN_ERROR] = str(exc)
                log.info("authentication failed: %s %s from %s: %s", request.method, request.path,
                         request.remote, exc)
                raise unauthorized() from None
            if resp is None:
                raise unauthorized()
            request[AUTH] = resp
            request[USER] = resp.user
            return await handler(request)

        return authenticate

    return wrap
