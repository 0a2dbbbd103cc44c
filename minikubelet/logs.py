"""Container logs in the CRI format: the writer the shim uses and the reader behind ``kubectl logs``.

One line per log record, as containerd writes them (pkg/cri/io/logger.go) and the kubelet reads them
(pkg/kubelet/kuberuntime/logs/logs.go)::

    2026-11-28T12:00:00.123456789Z stdout F hello world\\n
    2026-11-28T12:00:00.223456789Z stderr P first 16 KiB of a very long line
    2026-11-28T12:00:00.223456790Z stderr F ...and the rest of it\\n

1. Timestamp: RFC3339 with exactly nine fractional digits (containerd's fixed format, so lines sort).
2. Stream: ``stdout`` or ``stderr``.
3. Tag: ``F`` (full: the record ends a line) or ``P`` (partial: a line longer than
   :data:`MAX_LINE` bytes, continued by the next record of the same stream).
4. Content, then ``\\n``. A line still open when the stream ends is written with ``F`` (containerd
   does the same), so ``printf foo`` logs ``... stdout F foo``.

The reader joins partials, then applies the kubelet's options in its order: stream, sinceTime,
tailLines, then timestamps and limitBytes on the output.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 16 * 1024  # containerd's default max_container_log_line_size
STREAMS = ("stdout", "stderr")
_LINE = re.compile(rb"^(\S+) (stdout|stderr) ([FP]) (.*)$", re.DOTALL)
_TS = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def format_timestamp(ns: int) -> str:
    """``2026-11-28T12:00:00.123456789Z`` from nanoseconds since the epoch (UTC)."""
    secs, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_timestamp(text: str) -> int:
    """Nanoseconds since the epoch from an RFC3339 (or RFC3339Nano) timestamp; ValueError if not one."""
    m = _TS.match(text.strip())
    if m is None:
        raise ValueError(f"not an RFC3339 timestamp: {text!r}")
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8)
    tz = dt.UTC if zone == "Z" else dt.timezone(
        (1 if zone[0] == "+" else -1) * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    whole = int(dt.datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp())
    return whole * 1_000_000_000 + int(frac.ljust(9, "0") or 0)


@dataclass(frozen=True)
class LogLine:
    timestamp: int  # ns since the epoch
    stream: str
    partial: bool
    content: bytes  # without the record's newline

    @property
    def raw_timestamp(self) -> str:
        return format_timestamp(self.timestamp)


def parse_line(raw: bytes) -> LogLine:
    """One CRI record (with or without its trailing newline); ValueError if it is not one."""
    m = _LINE.match(raw[:-1] if raw.endswith(b"\n") else raw)
    if m is None:
        raise ValueError(f"not a CRI log line: {raw[:60]!r}")
    return LogLine(parse_timestamp(m.group(1).decode()), m.group(2).decode(), m.group(3) == b"P", m.group(4))


class CriLogWriter:
    """Turns the bytes of stdout/stderr into CRI records on one file; thread-safe (one thread per pipe)."""

    def __init__(self, out: BinaryIO, clock: Iterable[int] | None = None) -> None:
        self._out = out
        self._lock = threading.Lock()
        self._pending = {s: b"" for s in STREAMS}
        self._clock = iter(clock) if clock is not None else None

    def _now(self) -> int:
        return next(self._clock) if self._clock is not None else time.time_ns()

    def write(self, stream: str, data: bytes) -> None:
        buf = self._pending[stream] + data
        records: list[tuple[bool, bytes]] = []
        while True:
            nl = buf.find(b"\n")
            if nl == -1 or nl > MAX_LINE:
                if len(buf) <= MAX_LINE:
                    break
                records.append((True, buf[:MAX_LINE]))
                buf = buf[MAX_LINE:]
                continue
            records.append((False, buf[:nl]))
            buf = buf[nl + 1:]
        self._pending[stream] = buf
        self._emit(stream, records)

    def close_stream(self, stream: str) -> None:
        """End of a stream: what is left becomes a full record."""
        rest, self._pending[stream] = self._pending[stream], b""
        if rest:
            self._emit(stream, [(False, rest)])

    def _emit(self, stream: str, records: list[tuple[bool, bytes]]) -> None:
        if not records:
            return
        with self._lock:
            for partial, content in records:
                tag = b"P" if partial else b"F"
                ts = format_timestamp(self._now()).encode()
                self._out.write(b"%s %s %s %s\n" % (ts, stream.encode(), tag, content))
            self._out.flush()


@dataclass(frozen=True)
class LogOptions:
    """The kubelet's log options (v1.PodLogOptions as the kubelet API receives them)."""

    tail_lines: int | None = None
    since_ns: int | None = None  # sinceTime / now - sinceSeconds, in ns since the epoch
    timestamps: bool = False
    limit_bytes: int | None = None
    stream: str = "All"  # All | Stdout | Stderr


def messages(records: Iterable[LogLine]) -> Iterator[LogLine]:
    """Join partial records per stream into whole messages (timestamp of the first record)."""
    open_: dict[str, LogLine] = {}
    for rec in records:
        head = open_.pop(rec.stream, None)
        if head is not None:
            rec = LogLine(head.timestamp, rec.stream, rec.partial, head.content + rec.content)
        if rec.partial:
            open_[rec.stream] = rec
        else:
            yield rec
    yield from open_.values()


def read_records(data: bytes) -> Iterator[LogLine]:
    """Every parseable record of a log file's bytes (a torn last line is skipped)."""
    *whole, _torn = data.split(b"\n")
    for raw in whole:
        try:
            yield parse_line(raw)
        except ValueError:
            continue


def select(records: Iterable[LogLine], opts: LogOptions) -> list[LogLine]:
    """Messages after stream, sinceTime and tailLines filtering."""
    wanted = {"All": STREAMS, "Stdout": ("stdout",), "Stderr": ("stderr",)}.get(opts.stream, STREAMS)
    out = [m for m in messages(records) if m.stream in wanted and
           (opts.since_ns is None or m.timestamp >= opts.since_ns)]
    if opts.tail_lines is not None:
        out = out[-opts.tail_lines:] if opts.tail_lines > 0 else []
    return out


def render(message: LogLine, timestamps: bool) -> bytes:
    """What ``kubectl logs`` prints for one message: content and newline, maybe a timestamp first."""
    text = message.content + (b"" if message.partial else b"\n")
    return (message.raw_timestamp.encode() + b" " + text) if timestamps else text


def read_log(path: str, opts: LogOptions = LogOptions()) -> bytes:
    """The body of ``GET /containerLogs/...`` (not following) for one CRI log file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return b""
    out = b"".join(render(m, opts.timestamps) for m in select(read_records(data), opts))
    return out[:opts.limit_bytes] if opts.limit_bytes is not None else out
