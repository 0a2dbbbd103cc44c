"""Static bearer tokens from ``--token-auth-file`` (k8s.io/apiserver/pkg/authentication/token/tokenfile).

A token authenticator in the union, after x509. The file is CSV, one token per line::

    31ada4fd-adec-460c-809a-9e56ceb75269,alice,u-1,"devs,system:masters"
    # comments and blank lines are skipped (the real loader would reject a '#' line)
    s3cr3t,bob,u-2

Columns: token, user name, uid, then an optional quoted, comma-separated group list. Rules:

1. Fewer than 3 columns, or a bare or unterminated quote, fails the load with ``ValueError`` naming the line.
2. An empty token is skipped with a warning; a duplicate token replaces the earlier one (warning).
3. A request whose bearer token is not in the file is not mine: other authenticators may try, and
   the union answers 401 "invalid bearer token" if nobody claims it.

Tokens are kept only as SHA-256 digests, so the lookup time does not depend on how much of a
guessed token matches a real one and the secrets are not kept in memory in the clear.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from miniapi.authn.base import AuthResponse, Credentials, token_digest
from miniapi.user import UserInfo

log = logging.getLogger(__name__)
_FIELD = r'(?:"(?:[^"]|"")*"|[^",]*)'
_RECORD = re.compile(rf"{_FIELD}(?:,{_FIELD})*")  # RFC 4180 without line breaks, like Go's csv


def _digest(token: str) -> bytes:
    return token_digest(token)


class TokenFileAuthenticator:
    """Maps the bearer tokens listed in a CSV file to fixed users."""

    name = "token-file"

    def __init__(self, tokens: Mapping[str, UserInfo]) -> None:
        self._users = {_digest(token): user for token, user in tokens.items()}

    @classmethod
    def from_file(cls, path: str | Path) -> TokenFileAuthenticator:
        text = Path(path).read_text(encoding="utf-8")
        return cls(parse_token_file(text.splitlines(), source=str(path)))

    def __len__(self) -> int:
        return len(self._users)

    async def authenticate(self, creds: Credentials) -> AuthResponse | None:
        if not creds.bearer_token:
            return None
        user = self._users.get(creds.token_digest)
        return AuthResponse(user=user, authenticator=self.name) if user else None

    def authenticate_token(self, token: str) -> AuthResponse | None:
        user = self._users.get(_digest(token))
        return AuthResponse(user=user, authenticator=self.name) if user else None


def parse_token_file(lines: Iterable[str], source: str = "<token file>") -> dict[str, UserInfo]:
    """Parse the CSV lines (rules 1-2) into token -> UserInfo."""
    tokens: dict[str, UserInfo] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        record = _parse_line(line, number, source)
        if not record[0]:
            log.warning("tokenfile: empty token skipped file=%s line=%d", source, number)
            continue
        if record[0] in tokens:
            log.warning("tokenfile: duplicate token replaces an earlier one file=%s line=%d", source, number)
        groups = tuple(record[3].split(",")) if len(record) >= 4 and record[3] else ()
        tokens[record[0]] = UserInfo(name=record[1], uid=record[2], groups=groups)
    return tokens


def _parse_line(line: str, number: int, source: str) -> list[str]:
    if not _RECORD.fullmatch(line):
        raise ValueError(f"token file '{source}' line {number}: bare or unterminated quote")
    try:
        record = next(csv.reader([line], strict=True), [])
    except csv.Error as e:
        raise ValueError(f"token file '{source}' line {number}: {e}") from None
    if len(record) < 3:
        raise ValueError(f"token file '{source}' line {number}: must have at least 3 columns "
                         f"(token, user name, user uid), found {len(record)}")
    return record
