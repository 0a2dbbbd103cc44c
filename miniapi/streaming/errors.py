"""The errors of the streaming codecs: one shallow family, each carrying the wire reply it implies.

The codecs never do I/O, so an error cannot answer the peer itself; instead it says what the I/O
adapter should send before it hangs up (h11's ``RemoteProtocolError.error_status_hint`` idea):

======================  =====================================  ==========================================
error                   raised when                            hint for the wire reply
======================  =====================================  ==========================================
``ProtocolError``       the *peer* broke the protocol and the  ``goaway_status`` (SPDY: send GOAWAY with
                        session cannot continue                it, then close), ``close_code`` (WebSocket)
``LocalProtocolError``  *our* caller misused an API (data on   none: a programming error, fix the caller
                        a closed stream, reply twice, ...)
======================  =====================================  ==========================================

Errors confined to one stream (a bad header block, a frame too large) are *not* exceptions: the
session resets that stream itself (``RST_STREAM``) and reports an event.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "StreamingError"]


class StreamingError(Exception):
    """Base class of every error raised by ``miniapi.streaming``."""


class ProtocolError(StreamingError):
    """The peer sent bytes that end the session.

    ``goaway_status`` is the SPDY GOAWAY status to send (1 PROTOCOL_ERROR, 2 INTERNAL_ERROR);
    ``close_code`` the WebSocket close code (1002 protocol error, 1009 message too big). Any bytes
    the session queued before raising (e.g. the GOAWAY itself) are still in ``data_to_send()``.
    """

    def __init__(self, message: str, *, goaway_status: int | None = 1, close_code: int | None = 1002) -> None:
        super().__init__(message)
        self.goaway_status = goaway_status
        self.close_code = close_code


class LocalProtocolError(StreamingError):
    """Our own caller asked for something the protocol forbids; nothing was queued."""
