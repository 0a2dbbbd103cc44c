"""The ``channel.k8s.io`` WebSocket protocols of exec, attach and the Python client's port-forward.

Sans-IO: one WebSocket *message payload* in, one event out; the adapter owns the socket and sends
each ``encode()`` result as one binary message (text message for the base64 variants).

Wire example (``kubectl exec -it p1 -- sh``, subprotocol ``v5.channel.k8s.io``)::

    kubectl -> server   00 6c 73 0a                      channel 0 (stdin)  "ls\\n"
    kubectl -> server   04 7b 22 57 69 64 74 68 22 3a    channel 4 (resize) '{"Width":80,"Height":24}'
                        38 30 2c ... 7d
    server -> kubectl   01 62 69 6e 0a                   channel 1 (stdout) "bin\\n"
    kubectl -> server   ff 00                            v5 only: close channel 0 (stdin hit EOF)
    server -> kubectl   03 7b 22 6d 65 74 61 ... 7d      channel 3 (error)  one Status JSON, then
                                                         WebSocket close 1000

The base64 variants prefix the ASCII digit instead (``"1YmluCg=="`` = stdout ``bin\\n``).

===========================  =========  ================  ===============  ===========================
subprotocol                  encoding   channel 3 carries  ``ff NN`` close  who speaks it
===========================  =========  ================  ===============  ===========================
``v5.channel.k8s.io``        binary     Status JSON        yes              kubectl 1.30+, apiserver
``v4.channel.k8s.io``        binary     Status JSON        no               Python client, kubelet
``v4.base64.channel.k8s.io`` base64     Status JSON        no               kubelet (browsers)
``channel.k8s.io`` / ``""``  binary     error text         no               kubelet (legacy)
``base64.channel.k8s.io``    base64     error text         no               kubelet (legacy)
===========================  =========  ================  ===============  ===========================

Decoding never raises: a frame the real server would skip (empty, unknown channel, bad base64,
bad resize JSON) becomes :class:`FrameError` with ``close_code=None`` (log it and go on, as
k8s.io/streaming ``wsstream/conn.go`` and the kubelet's resize loop do).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from miniapi.streaming.errors import LocalProtocolError

__all__ = [
    "CLOSE_CHANNEL", "ERROR", "PROTOCOLS", "RESIZE", "STDERR", "STDIN", "STDOUT",
    "ChannelClosed", "ChannelEvent", "ChannelProtocol", "CloseStdin", "ErrorChannel", "FrameError",
    "ProtocolSpec", "Resize", "Stderr", "Stdin", "Stdout", "exit_code", "negotiate",
    "status_internal_error", "status_non_zero_exit", "status_success",
]

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_CHANNEL = 255


@dataclass(frozen=True)
class ProtocolSpec:
    name: str
    base64: bool          # text messages: ASCII '0'+channel, then base64 (RFC 4648 standard alphabet)
    status_json: bool     # v4+: channel 3 carries a metav1.Status; before: a plain error message
    close_signal: bool    # v5: [0xff, channel] half-closes a channel


PROTOCOLS: dict[str, ProtocolSpec] = {p.name: p for p in (
    ProtocolSpec("v5.channel.k8s.io", base64=False, status_json=True, close_signal=True),
    ProtocolSpec("v4.channel.k8s.io", base64=False, status_json=True, close_signal=False),
    ProtocolSpec("v4.base64.channel.k8s.io", base64=True, status_json=True, close_signal=False),
    ProtocolSpec("channel.k8s.io", base64=False, status_json=False, close_signal=False),
    ProtocolSpec("base64.channel.k8s.io", base64=True, status_json=False, close_signal=False),
    ProtocolSpec("", base64=False, status_json=False, close_signal=False),
)}


# --- events -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stdin:
    data: bytes


@dataclass(frozen=True)
class Stdout:
    data: bytes


@dataclass(frozen=True)
class Stderr:
    data: bytes


@dataclass(frozen=True)
class ErrorChannel:
    """Channel 3. ``status`` is the parsed Status for v4+ (None if the text is not JSON)."""
    data: bytes
    status: dict[str, Any] | None


@dataclass(frozen=True)
class Resize:
    width: int
    height: int


@dataclass(frozen=True)
class CloseStdin:
    """v5 ``ff 00``: the client's stdin reached EOF; close the process's stdin."""


@dataclass(frozen=True)
class ChannelClosed:
    """v5 ``ff NN`` for a channel other than stdin (kubectl never sends it)."""
    channel: int


@dataclass(frozen=True)
class FrameError:
    """A frame to skip. ``close_code`` None: log and continue; else close the WebSocket with it."""
    message: str
    channel: int | None = None
    close_code: int | None = None


ChannelEvent = Stdin | Stdout | Stderr | ErrorChannel | Resize | CloseStdin | ChannelClosed | FrameError


# --- negotiation ------------------------------------------------------------------------------

def negotiate(offered: Iterable[str], supported: Iterable[str]) -> str | None:
    """Pick the subprotocol like k8s ``wsstream.handshake``: the client's first offer we support.

    ``offered`` is the ``Sec-WebSocket-Protocol`` header values (comma lists are split). No offer
    at all selects ``""`` if supported (legacy clients); no match gives None (answer 400).
    """
    wanted = [p.strip() for value in offered for p in value.split(",") if p.strip()]
    allowed = list(supported)
    if not wanted:
        return "" if "" in allowed else None
    for protocol in wanted:
        if protocol in allowed:
            return protocol
    return None


# --- the codec --------------------------------------------------------------------------------

class ChannelProtocol:
    """Encoder/decoder for one negotiated subprotocol (see the table in the module docstring)."""

    def __init__(self, version: str) -> None:
        try:
            self.spec = PROTOCOLS[version]
        except KeyError:
            raise LocalProtocolError(f"unknown channel protocol {version!r}") from None

    @property
    def is_text(self) -> bool:
        """Send ``encode()`` results as WebSocket text messages (base64 variants)."""
        return self.spec.base64

    def encode(self, channel: int, data: bytes = b"") -> bytes:
        if not 0 <= channel < CLOSE_CHANNEL:
            raise LocalProtocolError(f"channel {channel} out of range 0..254")
        if self.spec.base64:
            if channel > 9:
                raise LocalProtocolError(f"channel {channel} has no base64 digit")
            return bytes([ord("0") + channel]) + base64.b64encode(data)
        return bytes([channel]) + data

    def encode_close(self, channel: int) -> bytes:
        """v5 half-close of ``channel`` (``ff 00`` = stdin EOF)."""
        if not self.spec.close_signal:
            raise LocalProtocolError(f"{self.spec.name or 'channel.k8s.io'} has no close signal")
        return bytes([CLOSE_CHANNEL, channel])

    def encode_status(self, status: dict[str, Any]) -> bytes | None:
        """The channel-3 message ending a session; None when nothing is to be sent (v1 success)."""
        if self.spec.status_json:
            return self.encode(ERROR, json.dumps(status, separators=(",", ":")).encode())
        if status.get("status") == "Success":
            return None
        return self.encode(ERROR, str(status.get("message", "")).encode())

    def split(self, payload: bytes) -> tuple[int, bytes] | FrameError:
        """Channel number and data of one message, without exec's meaning of the channels."""
        if not payload:
            return FrameError("empty message")
        channel, data = payload[0], payload[1:]
        if self.spec.base64:
            channel -= ord("0")
            if channel < 0:
                return FrameError(f"invalid base64 channel digit {payload[:1]!r}")
            try:
                data = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as exc:
                return FrameError(f"invalid base64 on channel {channel}: {exc}", channel)
        return channel, data

    def decode(self, payload: bytes) -> ChannelEvent:
        if self.spec.close_signal and payload[:1] == bytes([CLOSE_CHANNEL]):
            if len(payload) != 2:
                return FrameError(f"close signal must be 2 bytes, got {len(payload)}", CLOSE_CHANNEL)
            return CloseStdin() if payload[1] == STDIN else ChannelClosed(payload[1])
        parts = self.split(payload)
        if isinstance(parts, FrameError):
            return parts
        return _event(parts[0], parts[1], self.spec)


def _event(channel: int, data: bytes, spec: ProtocolSpec) -> ChannelEvent:
    if channel == STDIN:
        return Stdin(data)
    if channel == STDOUT:
        return Stdout(data)
    if channel == STDERR:
        return Stderr(data)
    if channel == ERROR:
        return ErrorChannel(data, _json_object(data) if spec.status_json else None)
    if channel == RESIZE:
        return parse_resize(data)
    return FrameError(f"Frame is targeted for a reader {channel} that is not valid, possible protocol error",
                      channel)


def _json_object(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def parse_resize(data: bytes) -> Resize | FrameError:
    """``{"Width":80,"Height":24}`` as Go's ``json.Decode`` into ``TerminalSize{uint16,uint16}``.

    Keys match case-insensitively (Go), missing ones are 0, values must be integers 0..65535.
    """
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        return FrameError(f"error when decoding resize event: {exc}", RESIZE)
    if not isinstance(value, dict):
        return FrameError("error when decoding resize event: not a JSON object", RESIZE)
    size = {"width": 0, "height": 0}
    for key, number in value.items():
        field = key.lower()
        if field not in size:
            continue
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 0xFFFF:
            return FrameError(f"error when decoding resize event: {key}={number!r} is not a uint16", RESIZE)
        size[field] = number
    return Resize(size["width"], size["height"])


def encode_resize(width: int, height: int) -> bytes:
    """The JSON kubectl writes on channel 4 (with its trailing newline)."""
    return json.dumps({"Width": width, "Height": height}, separators=(",", ":")).encode() + b"\n"


# --- Status objects on channel 3 (PROTOCOLS.md 4.2) -------------------------------------------

def status_success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def status_non_zero_exit(code: int) -> dict[str, Any]:
    """kubectl prints ``command terminated with exit code N`` and exits N."""
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: exit status {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def status_internal_error(message: str) -> dict[str, Any]:
    """kubectl prints ``error: <message>`` and exits 1."""
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500}


def exit_code(status: dict[str, Any] | None) -> int | None:
    """What client-go makes of a channel-3 Status: 0, the remote exit code, or None (an error)."""
    if status is None or status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message", ""))
                except ValueError:
                    return None
    return None


def port_prefix(port: int) -> bytes:
    """First frame of each port-forward WS channel: the port, uint16 little-endian (80 -> ``50 00``)."""
    if not 0 < port <= 0xFFFF:
        raise LocalProtocolError(f"port {port} out of range 1..65535")
    return port.to_bytes(2, "little")
