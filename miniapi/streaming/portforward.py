"""The ``portforward.k8s.io`` protocol on a SPDY session: what the kubelet does with kubectl's streams.

Sits on a server :class:`~miniapi.streaming.spdy_session.SpdySession` (kubectl 1.37 tunnels it in
WebSocket binary messages, subprotocol ``SPDY/3.1+portforward.k8s.io``; older ones upgrade to
raw ``SPDY/3.1``). Ported from the kubelet's cri-streaming ``portforward/httpstream.go``.

Per local TCP connection kubectl opens two streams, the error stream first (decoded headers)::

    SYN_STREAM id 1  streamtype: error  port: 80  requestid: 0      then DATA id 1, FIN, length 0
    SYN_STREAM id 3  streamtype: data   port: 80  requestid: 0      then DATA id 3 both ways

The server answers each SYN_STREAM with an empty SYN_REPLY; the first one carries the zlib
header (``80 03 00 02 00 00 00 14 00 00 00 01 78 f9 e3 c6 a7 c2 02 a6 23 06 00 00 00 00 ff ff``),
later ones are 20 bytes (``80 03 00 02 00 00 00 0c 00 00 00 03 02 01 00 00 00 00 ff ff``). On
success it ends both streams with empty DATA+FIN (``00 00 00 03 01 00 00 00`` for stream 3); on
failure it first writes the reason as text on the error stream, e.g. ``error forwarding port 81
to pod p1, uid uid-p1: dial tcp4 127.0.0.1:81: connect: connection refused``; kubectl logs it,
sends GOAWAY, closes the WebSocket (1000) and exits 1 with ``error: lost connection to pod``.

Rules (kubelet's, in order):

1. ``port`` is required, a decimal 1..65535 (and one of ``allowed_ports`` if given);
   ``streamtype`` is required, ``error`` or ``data``. Else the stream is reset (CANCEL, as
   spdystream's ``Reset``) and :class:`ForwardRejected` reports the kubelet's message.
2. Streams pair by ``requestid``; without it, by stream id (error: id, data: id - 2).
3. A second stream of a type already in the pair is reset; the error stream says why.
4. A pair incomplete after ``stream_creation_timeout`` (30 s) is dropped by :meth:`expire`.
5. Data arriving before the pair is complete is held (up to 1 MiB), never lost.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from miniapi.streaming.errors import LocalProtocolError
from miniapi.streaming.spdy import RstStatus
from miniapi.streaming.spdy_events import DataReceived, StreamEnded, StreamOpened, StreamReset, header
from miniapi.streaming.spdy_session import SpdySession
from miniapi.streaming.spdy_stream import Role, StreamState

__all__ = ["ForwardClosed", "ForwardData", "ForwardEnded", "ForwardEvent", "ForwardOpened", "ForwardRejected",
           "PortForwardServer", "parse_port"]

_EARLY_LIMIT = 1 << 20


@dataclass(frozen=True)
class ForwardOpened:
    """Both streams of a request are here: dial ``port`` in the pod."""
    request_id: str
    port: int


@dataclass(frozen=True)
class ForwardData:
    request_id: str
    data: bytes


@dataclass(frozen=True)
class ForwardEnded:
    """The client half-closed (its local connection hit EOF): shut down writing to the pod."""
    request_id: str


@dataclass(frozen=True)
class ForwardClosed:
    """The request is over and forgotten (finished, reset by the client, timed out); close the pod socket."""
    request_id: str
    reason: str


@dataclass(frozen=True)
class ForwardRejected:
    """A stream was refused; ``message`` is the kubelet's text."""
    stream_id: int
    message: str


ForwardEvent = ForwardOpened | ForwardData | ForwardEnded | ForwardClosed | ForwardRejected


@dataclass
class _Pair:
    request_id: str
    created: float
    port: int = 0
    error_stream: int | None = None
    data_stream: int | None = None
    opened: bool = False
    early: bytearray = field(default_factory=bytearray)


def parse_port(value: str | None) -> int:
    """The ``port`` header as the kubelet checks it; ValueError carries the kubelet's message."""
    if not value:
        raise ValueError('"port" header is required')
    if not value.isascii() or not value.isdigit():
        raise ValueError(f'unable to parse "{value}" as a port: strconv.ParseUint: parsing "{value}": invalid syntax')
    port = int(value)
    if port > 0xFFFF:
        raise ValueError(f'unable to parse "{value}" as a port: strconv.ParseUint: parsing "{value}": '
                         "value out of range")
    if port < 1:
        raise ValueError(f'port "{value}" must be > 0')
    return port


class PortForwardServer:
    def __init__(self, *, pod: str = "", uid: str = "", allowed_ports: Collection[int] | None = None,
                 stream_creation_timeout: float = 30.0, session: SpdySession | None = None) -> None:
        self.session = session or SpdySession(Role.SERVER)
        self.pod, self.uid = pod, uid
        self.allowed_ports = None if allowed_ports is None else frozenset(allowed_ports)
        self.timeout = stream_creation_timeout
        self._pairs: dict[str, _Pair] = {}
        self._by_stream: dict[int, str] = {}

    @property
    def requests(self) -> int:
        return len(self._pairs)

    def data_to_send(self) -> bytes:
        return self.session.data_to_send()

    def receive_data(self, data: bytes, now: float = 0.0) -> list[ForwardEvent]:
        """Feed wire bytes; ``now`` (any monotonic clock) stamps new pairs for :meth:`expire`."""
        out: list[ForwardEvent] = []
        for event in self.session.receive_data(data):
            if isinstance(event, StreamOpened):
                self._stream_opened(event, now, out)
            elif isinstance(event, DataReceived):
                self._data(event, out)
            elif isinstance(event, StreamEnded):
                pair = self._pair_of(event.stream_id)
                if pair is not None and event.stream_id == pair.data_stream and pair.opened:
                    out.append(ForwardEnded(pair.request_id))
            elif isinstance(event, StreamReset):
                pair = self._pair_of(event.stream_id)
                if pair is not None:
                    self._drop(pair, "reset by the client" if event.remote else event.reason, out)
        self._collect(out)
        return out

    # --- the app's answers ----------------------------------------------------------------------

    def is_open(self, request_id: str) -> bool:
        """True while data may still be sent to the client for ``request_id``."""
        pair = self._pairs.get(request_id)
        return pair is not None and pair.opened and self._can_send(pair.data_stream or 0)

    def send(self, request_id: str, data: bytes) -> None:
        """Pod bytes to the client. LocalProtocolError once the request is over (see ``is_open``)."""
        pair = self._open_pair(request_id)
        assert pair.data_stream is not None
        self.session.send_data(pair.data_stream, data)

    def finish(self, request_id: str) -> list[ForwardEvent]:
        """The pod side closed cleanly: FIN the data stream, then an empty FIN on the error stream.

        A no-op for a request that is already over, so the adapter need not track races.
        """
        pair = self._pairs.get(request_id)
        if pair is None or not pair.opened:
            return []
        for sid in (pair.data_stream, pair.error_stream):
            if sid is not None and self._can_send(sid):
                self.session.end_stream(sid)
        out: list[ForwardEvent] = []
        self._collect(out)
        return out

    def fail(self, request_id: str, reason: str) -> list[ForwardEvent]:
        """Forwarding failed: the kubelet's message on the error stream, then both streams ended."""
        pair = self._pairs.get(request_id)
        if pair is None or not pair.opened:
            return []
        message = f"error forwarding port {pair.port} to pod {self.pod}, uid {self.uid}: {reason}"
        self._write_error(pair, message)
        return self.finish(request_id)

    def expire(self, now: float) -> list[ForwardEvent]:
        out: list[ForwardEvent] = []
        for pair in [p for p in self._pairs.values() if not p.opened and now - p.created >= self.timeout]:
            self._write_error(pair, f"(conn=spdy, request={pair.request_id}) timed out waiting for streams")
            if pair.error_stream is not None and self._can_send(pair.error_stream):
                self.session.end_stream(pair.error_stream)
            if pair.data_stream is not None:
                self.session.reset_stream(pair.data_stream, RstStatus.CANCEL)
            self._drop(pair, "timed out waiting for streams", out)
        return out

    def close(self) -> None:
        self.session.close()

    # --- internals --------------------------------------------------------------------------------

    def _stream_opened(self, event: StreamOpened, now: float, out: list[ForwardEvent]) -> None:
        sid, kind = event.stream_id, header(event.headers, "streamtype")
        try:
            port = parse_port(header(event.headers, "port"))
            if self.allowed_ports is not None and port not in self.allowed_ports:
                raise ValueError(f"port {port} is not one of the forwarded ports {sorted(self.allowed_ports)}")
            if not kind:
                raise ValueError('"streamType" header is required')
            if kind not in ("error", "data"):
                raise ValueError(f'invalid stream type "{kind}"')
        except ValueError as exc:
            self.session.reset_stream(sid, RstStatus.CANCEL)
            out.append(ForwardRejected(sid, str(exc)))
            return
        self.session.syn_reply(sid)
        rid = header(event.headers, "requestid") or str(sid if kind == "error" else sid - 2)
        pair = self._pairs.setdefault(rid, _Pair(rid, now))
        if (pair.error_stream if kind == "error" else pair.data_stream) is not None:
            message = f"error processing stream for request {rid}: {kind} stream already assigned"
            self._write_error(pair, message)
            self.session.reset_stream(sid, RstStatus.CANCEL)
            out.append(ForwardRejected(sid, message))
            return
        self._by_stream[sid] = rid
        if kind == "error":
            pair.error_stream = sid
        else:
            pair.data_stream, pair.port = sid, port
        if pair.error_stream is not None and pair.data_stream is not None:
            pair.opened = True
            out.append(ForwardOpened(rid, pair.port))
            if pair.early:
                out.append(ForwardData(rid, bytes(pair.early)))
                pair.early.clear()

    def _data(self, event: DataReceived, out: list[ForwardEvent]) -> None:
        pair = self._pair_of(event.stream_id)
        if pair is None or event.stream_id != pair.data_stream:
            return  # the client never writes on the error stream; ignore like the kubelet
        if pair.opened:
            out.append(ForwardData(pair.request_id, event.data))
        elif len(pair.early) + len(event.data) <= _EARLY_LIMIT:
            pair.early += event.data
        else:
            self.session.reset_stream(event.stream_id, RstStatus.FLOW_CONTROL_ERROR)
            self._drop(pair, "too much data before the error stream arrived", out)

    def _pair_of(self, stream_id: int) -> _Pair | None:
        rid = self._by_stream.get(stream_id)
        return None if rid is None else self._pairs.get(rid)

    def _open_pair(self, request_id: str) -> _Pair:
        pair = self._pairs.get(request_id)
        if pair is None or not pair.opened:
            raise LocalProtocolError(f"no open port-forward request {request_id!r}")
        return pair

    def _can_send(self, stream_id: int) -> bool:
        return self.session.stream_state(stream_id) in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)

    def _write_error(self, pair: _Pair, message: str) -> None:
        if pair.error_stream is not None and self._can_send(pair.error_stream):
            self.session.send_data(pair.error_stream, message.encode())

    def _collect(self, out: list[ForwardEvent]) -> None:
        """Forget requests whose data stream is closed (or, before pairing, whose only stream is)."""
        closed = StreamState.CLOSED
        for pair in list(self._pairs.values()):
            sids = [s for s in (pair.error_stream, pair.data_stream) if s is not None]
            if pair.data_stream is not None and self.session.stream_state(pair.data_stream) is closed:
                self._drop(pair, "finished", out)
            elif sids and all(self.session.stream_state(s) is closed for s in sids):
                self._drop(pair, "finished", out)

    def _drop(self, pair: _Pair, reason: str, out: list[ForwardEvent]) -> None:
        """Forget ``pair``: the error stream gets a FIN (kubectl waits for its EOF), the data stream a RST."""
        if self._pairs.pop(pair.request_id, None) is None:
            return
        for sid in (pair.error_stream, pair.data_stream):
            if sid is None:
                continue
            self._by_stream.pop(sid, None)
            if sid == pair.error_stream:
                if self._can_send(sid):
                    self.session.end_stream(sid)
            elif self.session.stream_state(sid) is not StreamState.CLOSED:
                self.session.reset_stream(sid, RstStatus.CANCEL)
        if pair.opened:
            out.append(ForwardClosed(pair.request_id, reason))
