"""Wire two sans-IO SPDY sessions together in memory (no sockets)."""

from __future__ import annotations

from miniapi.streaming.spdy_events import Event
from miniapi.streaming.spdy_session import SpdySession


def pump(a: SpdySession, b: SpdySession, *, rounds: int = 100) -> tuple[list[Event], list[Event]]:
    """Shuttle queued bytes both ways until both are quiet; returns (events at a, events at b)."""
    at_a: list[Event] = []
    at_b: list[Event] = []
    for _ in range(rounds):
        to_b, to_a = a.data_to_send(), b.data_to_send()
        if not to_a and not to_b:
            return at_a, at_b
        if to_b:
            at_b += b.receive_data(to_b)
        if to_a:
            at_a += a.receive_data(to_a)
    raise AssertionError("sessions never went quiet")
