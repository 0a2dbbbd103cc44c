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

Rule 2's answer is remembered per winning UserInfo object (the authenticators hand out the same frozen
object for a credential they remember), so a repeat caller costs no new UserInfo.
"""

from __future__ import annotations

from collections.abc import Sequence

from miniapi.authn.anonymous import AnonymousAuthenticator
from miniapi.authn.base import AuthenticationError, Authenticator, AuthResponse, Credentials
from miniapi.user import UserInfo, with_authenticated_group

INVALID_BEARER_TOKEN = "invalid bearer token"
CACHE_SIZE = 1024


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
        # id(winner's user) -> (that user, audiences, authenticator, rule 2's answer); the entry holds
        # the user, so its id cannot be reused while the entry lives
        self._answers: dict[int, tuple[UserInfo, tuple[str, ...], str, AuthResponse]] = {}

    async def authenticate(self, creds: Credentials) -> AuthResponse:
        errors: list[AuthenticationError] = []
        for authenticator in self.authenticators:
            try:
                response = await authenticator.authenticate(creds)
            except AuthenticationError as e:
                errors.append(e)
                continue
            if response is not None:
                return self._answer(response, response.authenticator or authenticator.name)
        if errors:
            raise UnionAuthenticationError(errors) from errors[0]
        if creds.bearer_token:
            raise AuthenticationError(INVALID_BEARER_TOKEN)
        if self.anonymous is not None:
            anonymous = await self.anonymous.authenticate(creds)
            assert anonymous is not None
            return anonymous
        raise AuthenticationError("no credentials provided and anonymous requests are disabled")

    def _answer(self, response: AuthResponse, authenticator: str) -> AuthResponse:
        """Rule 2, remembered."""
        user = response.user
        if response.annotations:  # per request (e.g. a stale token's): never remembered
            return AuthResponse(user=with_authenticated_group(user), audiences=response.audiences,
                                authenticator=authenticator, annotations=response.annotations)
        hit = self._answers.get(id(user))
        if hit is not None and hit[0] is user and hit[1] == response.audiences and hit[2] == authenticator:
            return hit[3]
        answer = AuthResponse(user=with_authenticated_group(user), audiences=response.audiences,
                              authenticator=authenticator)
        if len(self._answers) >= CACHE_SIZE:
            del self._answers[next(iter(self._answers))]
        self._answers[id(user)] = (user, response.audiences, authenticator, answer)
        return answer


def aggregate(errors: Sequence[Exception]) -> str:
    """Go's utilerrors.NewAggregate(...).Error(): one message alone, several as ``[a, b]``."""
    messages = list(dict.fromkeys(str(e) for e in errors))
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"
