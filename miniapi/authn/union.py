"""The authenticator chain (k8s.io/apiserver/pkg/authentication/request/union + bearertoken + group).

The authentication filter calls one :class:`UnionAuthenticator`, built in the real order: x509,
token file, service-account tokens, bootstrap tokens. Rules, as the real union applies them:

1. Try each authenticator in order; the first success wins, even after others raised (a bad
   client certificate plus a good token authenticates by the token).
2. The winner's user gets ``system:authenticated`` (AuthenticatedGroupAdder).
3. If nobody succeeded but someone raised: 401 with the reasons, joined like Go's aggregate
   (``reason`` or ``[reason1, reason2]``).
4. If nobody claimed a bearer token that is present: 401 ``invalid bearer token`` (the bearertoken
   wrapper's default error). An empty token (``Bearer `` alone) counts as no token, as in Go.
5. Otherwise (no credential, or a verified client certificate without a CommonName, which the real
   x509 authenticator also leaves unclaimed) the request is ``system:anonymous`` when
   ``--anonymous-auth`` is on, else 401.
"""

from __future__ import annotations

from collections.abc import Sequence

from miniapi.authn.anonymous import AnonymousAuthenticator
from miniapi.authn.base import AuthenticationError, Authenticator, AuthResponse, Credentials
from miniapi.user import with_authenticated_group

INVALID_BEARER_TOKEN = "invalid bearer token"


class UnionAuthenticationError(AuthenticationError):
    """Rule 3's error; ``causes`` keeps each authenticator's error (a bootstrap ``reason``...)."""

    def __init__(self, causes: Sequence[AuthenticationError]) -> None:
        super().__init__(aggregate(causes))
        self.causes = tuple(causes)


class UnionAuthenticator:
    """Runs the authenticators in order (rules 1-5); raises AuthenticationError for a 401."""

    name = "union"

    def __init__(self, authenticators: Sequence[Authenticator], anonymous: bool) -> None:
        self.authenticators = tuple(authenticators)
        self.anonymous = AnonymousAuthenticator() if anonymous else None

    async def authenticate(self, creds: Credentials) -> AuthResponse:
        errors: list[AuthenticationError] = []
        for authenticator in self.authenticators:
            try:
                response = await authenticator.authenticate(creds)
            except AuthenticationError as e:
                errors.append(e)
                continue
            if response is not None:
                return AuthResponse(user=with_authenticated_group(response.user),
                                    audiences=response.audiences,
                                    authenticator=response.authenticator or authenticator.name,
                                    annotations=response.annotations)
        if errors:
            raise UnionAuthenticationError(errors) from errors[0]
        if creds.bearer_token:
            raise AuthenticationError(INVALID_BEARER_TOKEN)
        if self.anonymous is not None:
            anonymous = await self.anonymous.authenticate(creds)
            assert anonymous is not None
            return anonymous
        raise AuthenticationError("no credentials provided and anonymous requests are disabled")


def aggregate(errors: Sequence[Exception]) -> str:
    """Go's utilerrors.NewAggregate(...).Error(): one message alone, several as ``[a, b]``."""
    messages = list(dict.fromkeys(str(e) for e in errors))
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
