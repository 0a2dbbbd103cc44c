"""The pieces under :class:`~miniapi.testing.server.KitAPIServer` that touch the real apiserver.

1. :class:`InProcessAPIServer` is :class:`~miniapi.server.APIServer` unchanged but for one thing:
   servers started from the same certificate files share one serving ``SSLContext`` (building it
   costs a file read, a key load and the client-CA hook each time).
2. :class:`KitTokenFile` is the kit's ``--token-auth-file``. kube-apiserver reads that file once, at
   start; the kit appends users to it on demand and then swaps a freshly loaded
   TokenFileAuthenticator into the running chain (:func:`reload_token_file`): what a restart would
   do, minus losing the store. A file of the test's own is only read (:func:`token_of`).
"""

from __future__ import annotations

import os
import secrets
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from miniapi.authn.tokenfile import TokenFileAuthenticator
from miniapi.authn.union import UnionAuthenticator
from miniapi.server import APIServer
from pki.tokens import parse_token_csv

_SERVING_CONTEXTS: dict[tuple[tuple[str, ...], tuple[int, ...]], ssl.SSLContext] = {}


class InProcessAPIServer(APIServer):
    """The real APIServer; only its serving TLS context is shared between servers with the same files."""

    def ssl_context(self) -> ssl.SSLContext:
        cfg = self.config
        if not cfg.tls_cert_file:
            return super().ssl_context()
        files = (cfg.tls_cert_file, cfg.tls_private_key_file, cfg.client_ca_file)
        stamps = tuple(os.stat(f).st_mtime_ns if f else 0 for f in files)
        return _serving_context(files, stamps, super().ssl_context)


def _serving_context(files: tuple[str, ...], stamps: tuple[int, ...],
                     build: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    key = (files, stamps)
    if key not in _SERVING_CONTEXTS:
        _SERVING_CONTEXTS[key] = build()
    return _SERVING_CONTEXTS[key]


class KitTokenFile:
    """token -> CSV line, written to ``path`` (0600, no fsync: it lives as long as its test)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lines: dict[str, str] = {}
        self.write()

    def add(self, name: str, groups: Sequence[str], uid: str) -> str:
        for value in (name, uid, *groups):
            if not value or any(c in value for c in ',"\r\n'):
                raise ValueError(f"token-file values must be non-empty, without commas or quotes: {value!r}")
        token = secrets.token_hex(16)
        self._lines[token] = f'{token},{name},{uid},"{",".join(groups)}"\n'
        self.write()
        return token

    def remove(self, token: str) -> bool:
        if self._lines.pop(token, None) is None:
            return False
        self.write()
        return True

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(self._lines.values()))


async def reload_token_file(server: APIServer, path: Path) -> None:
    """Swap a TokenFileAuthenticator loaded from ``path`` into the server's chains (request + TokenReview)."""
    fresh = TokenFileAuthenticator.from_file(path)
    for union in (server.authenticator, server.token_authenticator):
        if isinstance(union, UnionAuthenticator):
            union.authenticators = tuple(fresh if isinstance(a, TokenFileAuthenticator) else a
                                         for a in union.authenticators)


def token_of(path: str, name: str) -> str:
    """The token of user ``name`` in a token file the test brought itself."""
    for entry in parse_token_csv(Path(path).read_text()):
        if entry.user == name:
            return entry.token
    raise ValueError(f"user {name!r} is not in --token-auth-file={path}")
