"""The bottom layer of every apiserver -> node connection: a Dialer opens a byte stream to host:port.

Real kube-apiserver has the same seam: ``KubeletClientConfig.Dial`` / the egress selector's
``cluster`` network context. TLS and HTTP are layered on top by :mod:`miniapi.proxy.kubelet`, so
replacing the Dialer re-routes kubelet traffic without touching verification:

* :class:`DirectDialer` - a TCP connection from the apiserver (the default);
* an SSH tunnel or a Konnectivity client (issue 6) - the same Protocol, the bytes travel elsewhere.

A Dialer returns asyncio streams whose transport supports ``start_tls`` (any asyncio Transport does)
and raises :class:`~miniapi.proxy.errors.ConnectError` with Go's wording::

    dial tcp 127.0.0.2:10250: connect: connection refused
    dial tcp: lookup node1: no such host
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, runtime_checkable

from miniapi.proxy.address import join_host_port
from miniapi.proxy.errors import ConnectError

Resolver = Callable[[str], Awaitable[str]]
P = TypeVar("P", bound=asyncio.BaseProtocol)


class Dialer(Protocol):
    """Opens a raw byte stream to ``host:port`` on the cluster network."""

    name: str

    async def dial(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]: ...


@runtime_checkable
class ProtocolDialer(Protocol):
    """A Dialer that can also hand a plain connection straight to an asyncio Protocol (no streams):
    the proxy's plain backend connections (:mod:`miniapi.proxy.plainconn`) use it where offered."""

    async def connect(self, factory: Callable[[], P], host: str, port: int) -> P: ...


class DirectDialer:
    """A plain TCP connection from this process (timeouts are the caller's: ``--kubelet-timeout``)."""

    name = "direct"

    async def dial(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(host, port, limit=1 << 20)
        except OSError as exc:
            raise dial_error(host, port, exc) from exc

    async def connect(self, factory: Callable[[], P], host: str, port: int) -> P:
        """The same connection as :meth:`dial`, to the Protocol ``factory`` makes."""
        try:
            _, protocol = await asyncio.get_running_loop().create_connection(factory, host, port)
        except OSError as exc:
            raise dial_error(host, port, exc) from exc
        return protocol


def dial_error(host: str, port: int, exc: OSError) -> ConnectError:
    """Go's wording for a failed dial."""
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"dial tcp: lookup {host}: {_gai_text(exc)}")
    return ConnectError(f"dial tcp {join_host_port(host, port)}: connect: {errno_text(exc)}")


def _dns_is_local(resolv_conf: str = "/etc/resolv.conf") -> bool:
    """True when every nameserver is on loopback (e.g. docker's embedded DNS at 127.0.0.11)."""
    try:
        with open(resolv_conf) as f:
            servers = [line.split()[1] for line in f if line.startswith("nameserver") and len(line.split()) > 1]
    except OSError:
        return False
    return bool(servers) and all(s.startswith("127.") or s == "::1" for s in servers)


def hosts_file_lookup(host: str, hosts: str = "/etc/hosts") -> str | None:
    try:
        with open(hosts) as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and host in fields[1:]:
                    return fields[0]
    except OSError:
        return None
    return None


async def system_resolver(host: str) -> str:
    """The address of ``host``: getaddrinfo (files, then DNS) only where DNS itself is on loopback;
    elsewhere /etc/hosts alone. This project never sends traffic outside the machine's loopback range
    or the networks it creates, and a DNS query to an outside resolver would be such traffic."""
    if not _dns_is_local():
        address = hosts_file_lookup(host)
        if address is None:
            raise ConnectError(f"dial tcp: lookup {host}: no such host")
        return address
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectError(f"dial tcp: lookup {host}: {_gai_text(exc)}") from exc
    if not infos:
        raise ConnectError(f"dial tcp: lookup {host}: no such host")
    return str(infos[0][4][0])


def errno_text(exc: OSError) -> str:
    """Go's syscall.Errno strings are lower-case: ``connection refused``, ``no route to host``."""
    if exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc).lower() or type(exc).__name__


def _gai_text(exc: socket.gaierror) -> str:
    if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
        return "no such host"
    return str(exc.strerror or exc).lower()
