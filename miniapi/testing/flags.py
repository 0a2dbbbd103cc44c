"""Fixture flags -> :class:`~miniapi.config.Config`, through the CLI's own parser and validation.

A fixture apiserver is configured with the flags of ``python -m miniapi``, either as keyword
arguments named like the flag (``anonymous_auth=False`` is ``--anonymous-auth=false``) or as the
argv strings themselves (``"--authorization-mode=RBAC"``). Rules:

1. The kit's defaults come first, then keyword flags, then argv strings; later ones win.
2. ``True``/``False`` become ``true``/``false``; a list or tuple is joined with commas, except for
   the repeatable flags (``--service-account-key-file``, ``--service-account-issuer``), which are
   repeated; ``None`` drops the flag (back to the CLI default); ``""`` passes an empty value, which
   switches a file flag off (``client_ca_file=""``: no x509 authentication).
3. The result is parsed by :func:`miniapi.config.build_parser` and checked by
   :func:`miniapi.config.validate`, so a fixture refuses what ``python -m miniapi`` refuses.
4. Port: validation insists on 1..65535 (there is no "pick one" on the CLI). Unless a test passes
   ``secure_port``, the kit validates with the CLI default and then binds port 0, so the kernel
   picks a free port with no race; the CLI itself is unchanged.

The kit's defaults are kubeadm's (``--authorization-mode=Node,RBAC``,
``--enable-admission-plugins=NodeRestriction``, bootstrap tokens on,
anonymous auth left at the real default ``true``) over the session PKI and a per-server token file.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from miniapi.config import Config, ConfigError, build_parser, from_args
from miniapi.testing.clusterpki import ClusterPKI

REPEATABLE = frozenset({"--service-account-key-file", "--service-account-issuer"})


class FlagError(ValueError):
    """A flag the apiserver CLI does not know, or a value it refuses."""


def kit_defaults(pki: ClusterPKI, token_file: Path) -> dict[str, Any]:
    return {
        "bind_address": "127.0.0.1",
        "tls_cert_file": str(pki.serving_cert_file),
        "tls_private_key_file": str(pki.serving_key_file),
        "client_ca_file": str(pki.ca_file),
        "token_auth_file": str(token_file),
        "service_account_key_file": [str(pki.sa_pub_file)],
        "service_account_signing_key_file": str(pki.sa_key_file),
        "service_account_issuer": [pki.issuer],
        "authorization_mode": "Node,RBAC",
        "enable_admission_plugins": "NodeRestriction",
        "enable_bootstrap_token_auth": True,
        "cert_dir": str(token_file.parent),
    }


def flag_name(key: str) -> str:
    return key if key.startswith("-") else "--" + key.replace("_", "-")


def to_argv(flags: Mapping[str, Any]) -> list[str]:
    """Rule 2: keyword flags as argv strings."""
    argv: list[str] = []
    for key, value in flags.items():
        name = flag_name(key)
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(f"{name}={str(value).lower()}")
        elif isinstance(value, list | tuple):
            if name in REPEATABLE:
                argv += [f"{name}={v}" for v in value]
            else:
                argv.append(f"{name}={','.join(str(v) for v in value)}")
        else:
            argv.append(f"{name}={value}")
    return argv


@functools.cache
def _known_flags() -> frozenset[str]:
    return frozenset(opt for action in build_parser()._actions for opt in action.option_strings)


def _merge(defaults: Mapping[str, Any], flags: Mapping[str, Any], argv: Sequence[str],
           known: frozenset[str]) -> dict[str, Any]:
    merged = {flag_name(k): v for k, v in defaults.items()}
    for key, value in flags.items():
        merged[flag_name(key)] = value
    for arg in argv:
        if not arg.startswith("-"):
            raise FlagError(f"argv flags are written --flag=value (one string each), got {arg!r}")
        name, eq, value = arg.partition("=")
        merged[name] = value if eq else True
    unknown = sorted(n for n in merged if n not in known)
    if unknown:
        raise FlagError(f"unknown apiserver flag(s) {', '.join(unknown)}; see `python -m miniapi --help` "
                        f"(keyword flags are spelled with underscores: anonymous_auth=False)")
    return merged


def build_config(pki: ClusterPKI, token_file: Path, flags: Mapping[str, Any] | None = None,
                 argv: Sequence[str] = ()) -> tuple[Config, dict[str, Any]]:
    """The validated Config (port 0 unless given) and the merged flags (for error messages)."""
    merged = _merge(kit_defaults(pki, token_file), flags or {}, argv, _known_flags())
    args = to_argv(merged)
    try:
        cfg, _verbosity = from_args(args)  # the CLI's parser and validate(): rule 3
    except ConfigError as e:
        raise FlagError(str(e)) from None
    except SystemExit:  # argparse already printed why to stderr
        raise FlagError(f"the apiserver CLI refuses these flags: {' '.join(args)}") from None
    if merged.get("--secure-port") is None:
        cfg = dataclasses.replace(cfg, secure_port=0)  # rule 4: the kernel picks a free port
    return cfg, merged
