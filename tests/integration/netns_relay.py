"""A one-way door out of a network namespace: ``python -m tests.integration.netns_relay LISTEN TARGET``.

LISTEN and TARGET are ``tcp:HOST:PORT`` or ``unix:PATH``. Each accepted connection is copied both ways to
a new connection to TARGET, until either side ends. Two of these make a NAT-like exit for a node in its
own network namespace (tests/integration/tunnel_kit.py):

    node netns:  tcp:127.0.0.1:6443 --(relay)--> unix:/tmp/x/api.sock
    host:        unix:/tmp/x/api.sock --(relay)--> tcp:127.0.0.1:6443

Unix sockets live in the file system, which both namespaces share; nothing in the host namespace can
open a TCP connection into the node's, so connections only ever start on the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def _open(spec: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    kind, _, where = spec.partition(":")
    if kind == "unix":
        return await asyncio.open_unix_connection(where)
    host, _, port = where.rpartition(":")
    return await asyncio.open_connection(host, int(port))


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await src.read(1 << 18):
            dst.write(data)
            await dst.drain()
    dst.close()


async def main(listen: str, target: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await _open(target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))

    kind, _, where = listen.partition(":")
    if kind == "unix":
        server = await asyncio.start_unix_server(handle, where)
    else:
        host, _, port = where.rpartition(":")
        server = await asyncio.start_server(handle, host, int(port))
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
