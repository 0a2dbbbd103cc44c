"""An SSH ``direct-tcpip`` channel as asyncio streams, so that TLS can be started over it.

The :class:`~miniapi.proxy.dialer.Dialer` contract is "asyncio streams whose transport supports
``start_tls``": :class:`~miniapi.proxy.kubelet.KubeletDialer` runs its TLS handshake with the kubelet
*inside* the tunnel (end to end; the SSH server on the node sees only ciphertext). asyncssh hands out
its own SSHReader/SSHWriter, so this module adapts a channel to the asyncio Transport interface:

    StreamReader <- StreamReaderProtocol <- ChannelTransport <- _Session (asyncssh callbacks) <- channel
    StreamWriter -> ChannelTransport.write -> channel.write (SSH flow control: window adjust)

``start_tls`` swaps the transport's protocol (``set_protocol``) for asyncio's SSL protocol; the session
always delivers to whatever protocol the transport holds at that moment. Back-pressure runs both
ways: the SSH window pauses our writer (``pause_writing``), a full reader pauses the channel
(``pause_reading`` stops window adjusts, so the node's sshd stops sending).

Writes are coalesced until the end of the event loop's turn, twice: in :class:`ChannelTransport` (TLS
writes one 16 KiB record at a time; together they fill 32 KiB SSH packets) and under the SSH
connection (:class:`CorkedConnector`: asyncssh writes every packet on its own, one ``send()`` each).
That halves the packets and the system calls; bench/tunnels.py measures the effect.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

CHANNEL_WINDOW = 4 * 1024 * 1024  # bytes the node may send before we adjust (asyncssh default: 2 MiB)
FLUSH_AT = 256 * 1024  # coalesced bytes that are written at once, without waiting for the loop's turn


class _Coalescer:
    """Collects writes and hands them on joined, at the end of the loop's turn (or at FLUSH_AT bytes)."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self._parts: list[bytes] = []
        self.size = 0
        self._scheduled = False

    def add(self, data: bytes) -> None:
        self._parts.append(data)
        self.size += len(data)
        if self.size >= FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self._parts:
            data = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
            self._parts.clear()
            self.size = 0
            self._sink(data)

    def drop(self) -> None:
        self._parts.clear()
        self.size = 0


class ChannelTransport(asyncio.Transport):
    """asyncio Transport over one asyncssh TCP channel."""

    _start_tls_compatible = True

    def __init__(self, protocol: asyncio.BaseProtocol, peer: tuple[str, int]) -> None:
        super().__init__()
        self._protocol = protocol
        self._chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self._peer = peer
        self._closing = False
        self._reading = True
        self._out = _Coalescer(self._send)

    def attach(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self._chan = chan

    def _send(self, data: bytes) -> None:
        if self._chan is not None and not self._chan.is_closing():
            self._chan.write(data)

    @property
    def chan(self) -> asyncssh.SSHTCPChannel[bytes]:
        assert self._chan is not None, "channel not open"
        return self._chan

    # -- BaseTransport --------------------------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        if name == "ssh_channel":
            return self._chan
        if self._chan is not None and name in ("connection", "local_peername", "remote_peername"):
            return self._chan.get_extra_info(name, default)
        return default

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._out.flush()
            self._closing = True
            if self._chan is not None:
                self._chan.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    # -- ReadTransport --------------------------------------------------------------------------------
    def is_reading(self) -> bool:
        return self._reading and not self._closing

    def pause_reading(self) -> None:
        if self._reading and self._chan is not None:
            self._reading = False
            self._chan.pause_reading()

    def resume_reading(self) -> None:
        if not self._reading and self._chan is not None:
            self._reading = True
            self._chan.resume_reading()

    # -- WriteTransport -------------------------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._closing and data:
            self._out.add(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def write_eof(self) -> None:
        self._out.flush()
        self.chan.write_eof()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        self._closing = True
        self._out.drop()
        if self._chan is not None:
            self._chan.abort()

    def get_write_buffer_size(self) -> int:
        return self._out.size + (self._chan.get_write_buffer_size() if self._chan is not None else 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.chan.set_write_buffer_limits(high, low)


class _Session(asyncssh.SSHTCPSession[bytes]):
    """asyncssh's callbacks, forwarded to the transport's current protocol."""

    def __init__(self, transport: ChannelTransport) -> None:
        self._transport = transport

    def connection_made(self, chan: Any) -> None:
        self._transport.attach(chan)
        self._transport.get_protocol().connection_made(self._transport)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        protocol = self._transport.get_protocol()
        if isinstance(protocol, asyncio.BufferedProtocol):  # asyncio's SSLProtocol after start_tls
            view = memoryview(data)
            while view:
                buf = memoryview(protocol.get_buffer(len(view)))
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
                protocol.buffer_updated(n)
                view = view[n:]
        else:
            protocol.data_received(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        protocol = self._transport.get_protocol()
        return bool(protocol.eof_received())  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport._closing = True
        self._transport.get_protocol().connection_lost(exc)

    def pause_writing(self) -> None:
        self._transport.get_protocol().pause_writing()

    def resume_writing(self) -> None:
        self._transport.get_protocol().resume_writing()


async def open_streams(conn: asyncssh.SSHClientConnection, host: str, port: int, *, limit: int = 1 << 20
                       ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A direct-tcpip channel to ``host:port`` (as the node sees it), as asyncio streams.

    Raises asyncssh.ChannelOpenError when the node's sshd cannot connect (or refuses to forward)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = ChannelTransport(protocol, (host, port))
    await conn.create_connection(lambda: _Session(transport), host, port, encoding=None, window=CHANNEL_WINDOW)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


class _CorkedTransport(asyncio.Transport):
    """The SSH connection's TCP transport, with writes coalesced (see the module docstring)."""

    def __init__(self, inner: asyncio.Transport) -> None:
        super().__init__()
        self._inner = inner
        self._out = _Coalescer(inner.write)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._out.add(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self._out.add(b"".join(list_of_data))

    def close(self) -> None:
        self._out.flush()
        self._inner.close()

    def abort(self) -> None:
        self._out.drop()
        self._inner.abort()

    def get_write_buffer_size(self) -> int:
        return self._out.size + self._inner.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def write_eof(self) -> None:
        self._out.flush()
        self._inner.write_eof()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)


class _CorkedProtocol(asyncio.Protocol):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.inner.connection_made(_CorkedTransport(transport))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()  # type: ignore[no-any-return]

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class CorkedConnector:
    """asyncssh's ``tunnel=`` hook: the SSH connection's TCP socket, opened by us with coalesced writes."""

    async def create_connection(self, session_factory: Any, host: str, port: int) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_connection(lambda: _CorkedProtocol(session_factory()), host, port)
        return transport, protocol.inner
