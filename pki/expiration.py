"""``kubeadm certs check-expiration`` for a PKI directory: when does each certificate run out?

Reads what :mod:`pki.init` wrote (certificates embedded in kubeconfigs included) and prints the same
two tables kubeadm prints, columns padded like Go's tabwriter::

    CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY
    admin.conf                 Nov 28, 2026 12:00 UTC   364d            ca
    apiserver                  Nov 28, 2026 12:00 UTC   364d            ca
    !MISSING! controller-manager.conf

    CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME
    ca                      Nov 26, 2035 12:00 UTC   9y
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from pki.certs import utcnow
from pki.files import Layout, read_cert, read_client_config
from pki.kubeconfig import ClientCertData
from pki.pem import load_cert_pem


@dataclass(frozen=True)
class ExpirationRow:
    name: str
    path: Path
    not_after: dt.datetime | None  # None: the file is missing
    authority: str = "ca"


def collect(layout: Layout) -> tuple[list[ExpirationRow], list[ExpirationRow]]:
    """(leaf rows, CA rows) for every certificate kubeadm would list, plus each node's two."""
    leaves = [
        _row("admin.conf", layout.admin_conf),
        _row("apiserver", layout.pki("apiserver.crt")),
        _row("apiserver-kubelet-client", layout.pki("apiserver-kubelet-client.crt")),
        _row("controller-manager.conf", layout.controller_manager_conf),
    ]
    for name in layout.node_names():
        node = layout.node(name)
        leaves.append(_row(f"{name}/kubelet-client", node.kubelet_client_pem))
        leaves.append(_row(f"{name}/kubelet", node.kubelet_crt))
    return leaves, [_row("ca", layout.ca_crt, authority="")]


def render(
    leaves: Sequence[ExpirationRow], cas: Sequence[ExpirationRow], now: dt.datetime | None = None
) -> str:
    now = now or utcnow()
    leaf_head = ["CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY"]
    ca_head = ["CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME"]
    first = _table(leaf_head, leaves, lambda r: [*_cells(r, now), r.authority])
    return first + "\n" + _table(ca_head, cas, lambda r: _cells(r, now))


def short_human_duration(delta: dt.timedelta) -> str:
    """Go's duration.ShortHumanDuration, which kubeadm uses for RESIDUAL TIME."""
    seconds = int(delta.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    hours = seconds // 3600
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def _row(name: str, path: Path, authority: str = "ca") -> ExpirationRow:
    cert = _read(path) if path.exists() else None
    return ExpirationRow(name, path, cert.not_valid_after_utc if cert else None, authority)


def _read(path: Path) -> x509.Certificate | None:
    if path.suffix != ".conf":
        return read_cert(path)
    credential = read_client_config(path).credential
    return load_cert_pem(credential.cert_pem) if isinstance(credential, ClientCertData) else None


def _cells(row: ExpirationRow, now: dt.datetime) -> list[str]:
    assert row.not_after is not None
    expires = row.not_after.astimezone(dt.UTC).strftime("%b %d, %Y %H:%M UTC")
    return [row.name, expires, short_human_duration(row.not_after - now)]


def _table(
    head: list[str], rows: Sequence[ExpirationRow], cells_of: Callable[[ExpirationRow], list[str]]
) -> str:
    present = [cells_of(r) for r in rows if r.not_after is not None]
    widths = [max(10, *(len(line[i]) + 3 for line in [head, *present])) for i in range(len(head))]
    lines = [
        "".join(c.ljust(w) for c, w in zip(line[:-1], widths, strict=False)) + line[-1]
        for line in [head, *present]
    ]
    lines += [f"!MISSING! {r.name}" for r in rows if r.not_after is None]
    return "\n".join(lines) + "\n"
