"""PlainConnection, the proxy's plain backend connection, event by event against a recording transport
(the streams' behaviour where the proxy can tell), then once over a real loopback socket."""

from __future__ import annotations

import asyncio

import pytest

from miniapi.proxy.dialer import DirectDialer
from miniapi.proxy.errors import ConnectError
from miniapi.proxy.plainconn import PlainConnection


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.calls: list[str] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def pause_reading(self) -> None:
        self.calls.append("pause_reading")

    def resume_reading(self) -> None:
        self.calls.append("resume_reading")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.calls.append("close")


def connected(limit: int = 16) -> tuple[PlainConnection, RecordingTransport]:
    conn, transport = PlainConnection(limit=limit), RecordingTransport()
    conn.connection_made(transport)
    return conn, transport


async def test_read_gives_what_arrived_at_most_n_then_eof() -> None:
    conn, _ = connected()
    reading = asyncio.create_task(conn.read(4))
    await asyncio.sleep(0)
    assert not reading.done()  # waits for bytes
    conn.data_received(b"abcdef")
    assert await reading == b"abcd"
    assert await conn.read(100) == b"ef"
    conn.data_received(b"g")
    conn.data_received(b"h")
    assert await conn.read(-1) == b"gh"
    conn.eof_received()
    assert conn.at_eof() and await conn.read(10) == b""


async def test_a_lost_connection_raises_its_error_in_read_and_drain() -> None:
    conn, transport = connected()
    reading = asyncio.create_task(conn.read(10))
    await asyncio.sleep(0)
    conn.connection_lost(ConnectionResetError("reset by peer"))
    with pytest.raises(ConnectionResetError, match="reset by peer"):
        await reading
    with pytest.raises(ConnectionResetError):
        await conn.drain()
    await asyncio.wait_for(conn.wait_closed(), 1)


async def test_a_clean_close_reads_as_eof_and_drain_refuses() -> None:
    conn, transport = connected()
    conn.data_received(b"last")
    conn.connection_lost(None)
    assert await conn.read(10) == b"last" and await conn.read(10) == b""
    transport.closing = True
    with pytest.raises(ConnectionResetError, match="Connection lost"):
        await conn.drain()


async def test_reading_pauses_above_twice_the_limit_and_resumes_at_the_limit() -> None:
    conn, transport = connected(limit=4)
    conn.data_received(b"12345678")
    assert transport.calls == []
    conn.data_received(b"9")
    assert transport.calls == ["pause_reading"]
    await conn.read(4)
    assert transport.calls == ["pause_reading"]  # 5 still wait
    await conn.read(1)
    assert transport.calls == ["pause_reading", "resume_reading"]


async def test_drain_waits_while_writing_is_paused() -> None:
    conn, transport = connected()
    conn.write(b"x")
    assert transport.written == [b"x"]
    await conn.drain()  # not paused: at once
    conn.pause_writing()
    draining = asyncio.create_task(conn.drain())
    await asyncio.sleep(0)
    assert not draining.done()
    conn.resume_writing()
    await asyncio.wait_for(draining, 1)


async def test_one_reader_at_a_time() -> None:
    conn, _ = connected()
    first = asyncio.create_task(conn.read(1))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already waiting"):
        await conn.read(1)
    conn.data_received(b"a")
    assert await first == b"a"


async def test_over_a_loopback_socket_with_the_direct_dialer() -> None:
    async def echo_upper(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write((await reader.readexactly(5)).upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo_upper, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await DirectDialer().connect(PlainConnection, "127.0.0.1", port)
        conn.write(b"hello")
        await conn.drain()
        got = b""
        while data := await conn.read(2):
            got += data
        assert got == b"HELLO" and conn.at_eof()
        conn.close()
        await asyncio.wait_for(conn.wait_closed(), 5)
    finally:
        server.close()
        await server.wait_closed()
    with pytest.raises(ConnectError, match=rf"^dial tcp 127.0.0.1:{port}: connect: connection refused$"):
        await DirectDialer().connect(PlainConnection, "127.0.0.1", port)
