"""Port-forward over a ``v4.channel.k8s.io`` WebSocket: the Python client's (and the kubelet's) variant.

``GET .../pods/p1/portforward?ports=80,8080`` (kubelet: ``/portForward/ns/p1?port=80,8080``).
Port *i* of the query uses channel ``2i`` for data (both ways) and ``2i+1`` for errors (server to
client only). Right after the upgrade the server sends, on every channel, the port number as a
uint16 little-endian, which the Python client checks; after that, plain channel frames.
Ported from the kubelet's cri-streaming ``portforward/websocket.go``.

Wire example, ``?ports=80,8080`` then one request through port 80::

    server -> client   00 50 00        channel 0 (data 80)   port 80 = 0x0050
    server -> client   01 50 00        channel 1 (error 80)
    server -> client   02 90 1f        channel 2 (data 8080) port 8080 = 0x1f90
    server -> client   03 90 1f        channel 3 (error 8080)
    client -> server   00 47 45 54 20 2f ...   "GET /..." for port 80
    server -> client   00 48 54 54 50 ...      "HTTP/1.1 200 OK..."
    server -> client   01 65 72 72 ...         "error forwarding port 80 to pod ..." (on failure)

There is no per-request close: the TCP connection to each port lives as long as the WebSocket
(the real kubelet dials them all at upgrade time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from miniapi.streaming.channel import ChannelProtocol, FrameError, port_prefix
from miniapi.streaming.errors import LocalProtocolError
from miniapi.streaming.portforward import ForwardData

__all__ = ["PORTFORWARD_WS_PROTOCOLS", "ForwardError", "WsPortForwardClient", "WsPortForwardServer",
           "parse_ports"]

# what the kubelet's websocket.go accepts; the apiserver passes the choice through
PORTFORWARD_WS_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io", "")


@dataclass(frozen=True)
class ForwardError:
    """Text the server wrote on a port's error channel (client side)."""
    request_id: str
    message: str


def parse_ports(values: Iterable[str], param: str = "ports") -> tuple[int, ...]:
    """``?ports=80,8080`` (repeatable) as the kubelet's ``NewV4Options``; ValueError has its message."""
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError(f'query parameter "{param}" cannot be empty')
        for part in value.split(","):
            if not (part.isascii() and part.isdigit()) or int(part) > 0xFFFF:
                raise ValueError(f'unable to parse "{value}" as a port: strconv.ParseUint: parsing "{part}": '
                                 + ("value out of range" if part.isascii() and part.isdigit() else "invalid syntax"))
            if int(part) < 1:
                raise ValueError(f'port "{value}" must be > 0')
            ports.append(int(part))
    if not ports:
        raise ValueError(f'query parameter "{param}" is required')
    return tuple(ports)


class WsPortForwardServer:
    """Server side: frames for the ports of one WebSocket. Request ids are the port indexes ("0", "1")."""

    def __init__(self, ports: Sequence[int], protocol: str = "v4.channel.k8s.io") -> None:
        if not ports:
            raise LocalProtocolError("no ports to forward")
        self.ports = tuple(ports)
        self.codec = ChannelProtocol(protocol)

    def initial_messages(self) -> list[bytes]:
        """The port-number frames to send right after the upgrade, data then error channel per port."""
        return [self.codec.encode(ch, port_prefix(port))
                for i, port in enumerate(self.ports) for ch in (2 * i, 2 * i + 1)]

    def encode_data(self, request_id: str, data: bytes) -> bytes:
        return self.codec.encode(2 * self._index(request_id), data)

    def encode_error(self, request_id: str, reason: str, *, pod: str = "", uid: str = "") -> bytes:
        """The kubelet's failure text for that port, on its error channel."""
        index = self._index(request_id)
        text = f"error forwarding port {self.ports[index]} to pod {pod}, uid {uid}: {reason}"
        return self.codec.encode(2 * index + 1, text.encode())

    def decode(self, payload: bytes) -> ForwardData | FrameError:
        parts = self.codec.split(payload)
        if isinstance(parts, FrameError):
            return parts
        channel, data = parts
        if channel >= 2 * len(self.ports):
            return FrameError(f"Frame is targeted for a reader {channel} that is not valid", channel)
        if channel % 2:
            return FrameError(f"channel {channel} is a write-only error channel", channel)
        return ForwardData(str(channel // 2), data)

    def _index(self, request_id: str) -> int:
        if not request_id.isdigit() or int(request_id) >= len(self.ports):
            raise LocalProtocolError(f"no port with request id {request_id!r}")
        return int(request_id)


class WsPortForwardClient:
    """Client side (what the Python client does): check each channel's port frame, then route data."""

    def __init__(self, ports: Sequence[int], protocol: str = "v4.channel.k8s.io") -> None:
        self.ports = tuple(ports)
        self.codec = ChannelProtocol(protocol)
        self._initialized: set[int] = set()

    def encode_data(self, request_id: str, data: bytes) -> bytes:
        return self.codec.encode(2 * int(request_id), data)

    def decode(self, payload: bytes) -> ForwardData | ForwardError | FrameError | None:
        """None for the expected port frame; FrameError with close_code for a broken server."""
        parts = self.codec.split(payload)
        if isinstance(parts, FrameError):
            return FrameError(parts.message, parts.channel, close_code=1002)
        channel, data = parts
        if channel >= 2 * len(self.ports):
            return FrameError(f"Unexpected channel number: {channel}", channel, close_code=1002)
        port, request_id = self.ports[channel // 2], str(channel // 2)
        if channel not in self._initialized:
            if len(data) != 2 or int.from_bytes(data, "little") != port:
                return FrameError(f"Unexpected initial channel frame data size or port on channel {channel}",
                                  channel, close_code=1002)
            self._initialized.add(channel)
            return None
        if channel % 2:
            return ForwardError(request_id, data.decode("utf-8", "replace"))
        return ForwardData(request_id, data)
