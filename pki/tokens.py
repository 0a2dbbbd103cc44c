"""Bearer tokens that kubeadm-style setups hand out: the static token file and a bootstrap token.

Static token file (kube-apiserver ``--token-auth-file``), one user per line, groups optional::

    3f1c0a...e9,admin,uid-admin,"system:masters"
    token,user,uid,"group1,group2"

Bootstrap token (``kubeadm token create``), ``[a-z0-9]{6}.[a-z0-9]{16}``, i.e. ``<id>.<secret>``::

    abcdef.0123456789abcdef

The apiserver authenticates it as user ``system:bootstrap:<id>`` in groups ``system:bootstrappers``
and ``system:bootstrappers:kubeadm:default-node-token``; that group may create CSRs and nothing else,
which is how a new kubelet gets its first client certificate (TLS bootstrapping).
"""

from __future__ import annotations

import csv
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from pki.errors import PkiError

BOOTSTRAP_TOKEN_RE = re.compile(r"([a-z0-9]{6})\.([a-z0-9]{16})")
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAP_GROUPS = ("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token")
_TOKEN_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class StaticToken:
    """One line of the static token file."""

    token: str
    user: str
    uid: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class BootstrapToken:
    token_id: str
    secret: str

    def __str__(self) -> str:
        return f"{self.token_id}.{self.secret}"

    @property
    def user(self) -> str:
        return BOOTSTRAP_USER_PREFIX + self.token_id


def make_bootstrap_token() -> BootstrapToken:
    """A random bootstrap token, drawn as kubeadm draws it (bootstraputil.GenerateBootstrapToken)."""
    return BootstrapToken(_random_chars(6), _random_chars(16))


def parse_bootstrap_token(text: str) -> BootstrapToken:
    match = BOOTSTRAP_TOKEN_RE.fullmatch(text.strip())
    if match is None:
        raise PkiError(
            "bootstrap token must look like [a-z0-9]{6}.[a-z0-9]{16}, e.g. abcdef.0123456789abcdef"
        )
    return BootstrapToken(match.group(1), match.group(2))


def make_static_token() -> str:
    return secrets.token_hex(16)


def default_static_tokens() -> list[StaticToken]:
    """One all-powerful token user and one with no privileges until RBAC grants some."""
    return [
        StaticToken(make_static_token(), "admin", "uid-admin", ("system:masters",)),
        StaticToken(make_static_token(), "alice", "uid-alice", ("developers",)),
    ]


def render_token_csv(entries: Iterable[StaticToken]) -> str:
    """The file text; the groups column is always quoted so it may hold commas."""
    lines = []
    for entry in entries:
        for value in (entry.token, entry.user, entry.uid, *entry.groups):
            if not value or any(c in value for c in ',"\r\n'):
                raise PkiError(f"token file values must be non-empty, without commas or quotes: {value!r}")
        lines.append(f'{entry.token},{entry.user},{entry.uid},"{",".join(entry.groups)}"\n')
    return "".join(lines)


def parse_token_csv(text: str) -> list[StaticToken]:
    """Read a token file as the apiserver does (tokenfile.NewCSV): >= 3 columns, groups optional."""
    out = []
    for number, record in enumerate(csv.reader(text.splitlines(), skipinitialspace=True), start=1):
        if not record:
            continue
        if len(record) < 3:
            raise PkiError(f"token file line {number}: need at least 3 columns (token, user, uid)")
        groups = tuple(g.strip() for g in record[3].split(",") if g.strip()) if len(record) > 3 else ()
        out.append(StaticToken(record[0], record[1], record[2], groups))
    return out


def _random_chars(n: int) -> str:
    return "".join(secrets.choice(_TOKEN_CHARS) for _ in range(n))
