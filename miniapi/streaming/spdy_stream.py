"""One SPDY stream's state and windows, as kept by :class:`~miniapi.streaming.spdy_session.SpdySession`.

State table (SPDY/3 section 2.3; HTTP/2 uses the same names). ``FIN`` is the flag on a
SYN_STREAM, SYN_REPLY, HEADERS or DATA frame; a unidirectional SYN_STREAM counts as a FIN from
the side that did not open it::

    state                event                     next state
    -------------------  ------------------------  -------------------
    idle                 send SYN_STREAM           open
    idle                 send SYN_STREAM + FIN     half-closed (local)
    idle                 recv SYN_STREAM           open
    idle                 recv SYN_STREAM + FIN     half-closed (remote)
    open                 send FIN                  half-closed (local)
    open                 recv FIN                  half-closed (remote)
    half-closed (local)  recv FIN                  closed
    half-closed (remote) send FIN                  closed
    any                  send or recv RST_STREAM   closed

A closed stream is forgotten as soon as it has no data queued behind the send window, so a
session keeps no state for finished streams. Frames that arrive later for an id below the
highest seen are ignored (they were in flight when we reset the stream).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

__all__ = ["Role", "SessionState", "Stream", "StreamInput", "StreamState", "transition"]


class Role(Enum):
    CLIENT = "client"   # opens odd stream ids, sends odd ping ids
    SERVER = "server"   # even ids


class SessionState(Enum):
    OPEN = "open"
    CLOSING = "closing"  # GOAWAY sent
    FAILED = "failed"    # fatal protocol error


class StreamState(Enum):
    IDLE = "idle"
    OPEN = "open"
    HALF_CLOSED_LOCAL = "half-closed (local)"
    HALF_CLOSED_REMOTE = "half-closed (remote)"
    CLOSED = "closed"


class StreamInput(Enum):
    SEND_SYN = "send SYN_STREAM"
    RECV_SYN = "recv SYN_STREAM"
    SEND_FIN = "send FIN"
    RECV_FIN = "recv FIN"
    RESET = "send or recv RST_STREAM"


_S, _I = StreamState, StreamInput
_TABLE: dict[tuple[StreamState, StreamInput], StreamState] = {
    (_S.IDLE, _I.SEND_SYN): _S.OPEN,
    (_S.IDLE, _I.RECV_SYN): _S.OPEN,
    (_S.OPEN, _I.SEND_FIN): _S.HALF_CLOSED_LOCAL,
    (_S.OPEN, _I.RECV_FIN): _S.HALF_CLOSED_REMOTE,
    (_S.HALF_CLOSED_LOCAL, _I.RECV_FIN): _S.CLOSED,
    (_S.HALF_CLOSED_REMOTE, _I.SEND_FIN): _S.CLOSED,
}


def transition(state: StreamState, event: StreamInput) -> StreamState | None:
    """The next state, or None if ``event`` is not allowed in ``state``."""
    if event is StreamInput.RESET:
        return StreamState.CLOSED
    return _TABLE.get((state, event))


@dataclass
class Stream:
    stream_id: int
    local: bool                 # opened by us
    send_window: int
    recv_window: int
    state: StreamState = StreamState.IDLE
    replied: bool = False       # local: SYN_REPLY received; remote: SYN_REPLY sent
    recv_unacked: int = 0       # consumed bytes not yet returned with WINDOW_UPDATE
    pending: bytearray = field(default_factory=bytearray)  # waiting for send window
    pending_fin: bool = False  # FIN requested, not yet written (data still queued)

    def apply(self, event: StreamInput) -> bool:
        nxt = transition(self.state, event)
        if nxt is None:
            return False
        self.state = nxt
        return True

    @property
    def can_send(self) -> bool:
        return self.state in (StreamState.OPEN, StreamState.HALF_CLOSED_REMOTE)

    @property
    def can_receive(self) -> bool:
        return self.state in (StreamState.OPEN, StreamState.HALF_CLOSED_LOCAL)
