"""The anonymous identity (k8s.io/apiserver/pkg/authentication/request/anonymous).

Never part of the ordered list itself: :class:`~miniapi.authn.union.UnionAuthenticator` falls back
to it only when no authenticator raised and the request carried no credential, which is what
``--anonymous-auth=true`` (the real default) means. A bad credential therefore never turns anonymous.
"""

from __future__ import annotations

from miniapi.authn.base import AuthResponse, Credentials
from miniapi.user import ALL_UNAUTHENTICATED, ANONYMOUS, UserInfo

ANONYMOUS_USER = UserInfo(name=ANONYMOUS, groups=(ALL_UNAUTHENTICATED,))


class AnonymousAuthenticator:
    """Always says yes: ``system:anonymous`` in group ``system:unauthenticated``."""

    name = "anonymous"

    async def authenticate(self, creds: Credentials) -> AuthResponse | None:
        return AuthResponse(user=ANONYMOUS_USER, authenticator=self.name)
