"""Serving ``/containerLogs`` from a CRI log file (pkg/kubelet/kuberuntime/logs/logs.go), sans-IO.

The record format and its parser live in :mod:`minikubelet.logs`; this module turns the query into
options and the file's bytes, as they arrive, into the response body::

    2026-11-28T12:00:00.123456789Z stdout P partial line with
    2026-11-28T12:00:00.123456790Z stdout F out a newline
    2026-11-28T12:00:01Z stderr F oops

``GET /containerLogs/default/p1/c1?timestamps=true`` answers::

    2026-11-28T12:00:00.123456789Z partial line without a newline
    2026-11-28T12:00:01.000000000Z oops

Rules, in the order logs.go ``ReadLogs`` applies them, record by record (so they also hold while
following a file that is still being written):

1. ``tailLines=N`` starts N records (file lines) from the end; ``tail=N|all`` is the legacy spelling.
2. A record older than ``sinceTime`` / now-``sinceSeconds`` is skipped.
3. ``P`` (partial) records add no newline, so consecutive ones join into one line; the timestamp
   (RFC3339NanoFixed: nine fraction digits) prefixes only the first piece of a line.
4. ``stream=Stdout|Stderr`` drops the other stream (its bytes do not count towards the limit).
5. ``limitBytes`` counts what is written, timestamps included; the last line is cut and the stream ends.
A record that does not parse is skipped, as the kubelet does (it logs and continues).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from minikubelet.logs import LogLine, parse_line, parse_timestamp

_FALSE = frozenset({"", "0", "f", "false", "n", "no"})
STREAMS = ("Stdout", "Stderr", "All")


class LogQueryError(Exception):
    """A query the kubelet refuses: ``status`` is 400 (cannot decode) or 422 (invalid)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LogQuery:
    """v1.PodLogOptions as the kubelet decodes it from the query."""

    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time_ns: int | None = None
    limit_bytes: int | None = None
    stream: str = "All"

    def since_ns(self, now_ns: int) -> int | None:
        if self.since_time_ns is not None:
            return self.since_time_ns
        if self.since_seconds is not None:
            return now_ns - self.since_seconds * 1_000_000_000
        return None


def _bool(value: str) -> bool:
    return value.lower() not in _FALSE


def _int(name: str, value: str) -> int | None:
    if value == "":
        return None
    try:
        return int(value, 10)
    except ValueError:
        raise LogQueryError(400, f"Unable to decode query: {name}={value!r} is not an integer") from None


def parse_log_query(query: Mapping[str, str]) -> LogQuery:
    """The query of /containerLogs -> LogQuery (decode: 400, then ValidatePodLogQuery: 422)."""
    q = dict(query)
    if q.get("tail"):  # backwards compatibility: tail=N, and tail=all means no tailLines
        q["tailLines"] = q.pop("tail")
        if q["tailLines"] == "all":
            del q["tailLines"]
    since_time_ns = None
    if q.get("sinceTime"):
        try:
            since_time_ns = parse_timestamp(q["sinceTime"])
        except ValueError:
            raise LogQueryError(400, f"Unable to decode query: sinceTime={q['sinceTime']!r} is not an "
                                "RFC3339 time such as 2026-01-02T15:04:05Z") from None
    opts = LogQuery(
        follow=_bool(q.get("follow", "")), previous=_bool(q.get("previous", "")),
        timestamps=_bool(q.get("timestamps", "")), tail_lines=_int("tailLines", q.get("tailLines", "")),
        since_seconds=_int("sinceSeconds", q.get("sinceSeconds", "")), since_time_ns=since_time_ns,
        limit_bytes=_int("limitBytes", q.get("limitBytes", "")), stream=q.get("stream") or "All")
    problems = validate(opts)
    if problems:
        raise LogQueryError(422, "Invalid request: " + "; ".join(problems))
    return opts


def validate(opts: LogQuery) -> list[str]:
    """ValidatePodLogQuery, with the field error texts of k8s.io/apimachinery field.Error."""
    errs = []
    if opts.tail_lines is not None and opts.tail_lines < 0:
        errs.append(f"tailLines: Invalid value: {opts.tail_lines}: must be greater than or equal to 0")
    if opts.limit_bytes is not None and opts.limit_bytes < 1:
        errs.append(f"limitBytes: Invalid value: {opts.limit_bytes}: must be greater than 0")
    if opts.since_seconds is not None and opts.since_time_ns is not None:
        errs.append("Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")
    elif opts.since_seconds is not None and opts.since_seconds < 1:
        errs.append(f"sinceSeconds: Invalid value: {opts.since_seconds}: must be greater than 0")
    if opts.stream not in STREAMS:
        errs.append(f'stream: Unsupported value: "{opts.stream}": supported values: "Stdout", "Stderr", "All"')
    elif opts.stream != "All" and opts.tail_lines is not None:
        errs.append("Forbidden: `tailLines` and specific `stream` are mutually exclusive for now")
    return errs


def tail_offset(data: bytes, lines: int) -> int:
    """Where the last ``lines`` complete-or-not lines of data start (FindTailLineStartIndex)."""
    if lines == 0:
        return len(data)
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    pos = end
    for _ in range(lines):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return 0
    return pos + 1


class LogFormatter:
    """Feed file bytes in, get response bytes out; ``done`` once limitBytes is used up."""

    def __init__(self, opts: LogQuery, now_ns: int) -> None:
        self.opts = opts
        self._since = opts.since_ns(now_ns)
        self._remaining = opts.limit_bytes
        self._pending = b""  # an unfinished file line (the writer is mid-write)
        self._new_line = True
        self.done = False

    def feed(self, data: bytes) -> bytes:
        """Complete lines of data (plus what an earlier call left unfinished) -> output bytes."""
        self._pending += data
        cut = self._pending.rfind(b"\n")
        if cut < 0:
            return b""
        lines, self._pending = self._pending[:cut + 1], self._pending[cut + 1:]
        return self._render(lines.splitlines(keepends=True))

    def flush(self) -> bytes:
        """The container is gone: a last line without newline counts too."""
        rest, self._pending = self._pending, b""
        return self._render([rest]) if rest else b""

    def _render(self, lines: list[bytes]) -> bytes:
        out = bytearray()
        for line in lines:
            if self.done:
                break
            try:
                record = parse_line(line)
            except ValueError:
                continue
            if self._since is not None and record.timestamp < self._since:
                continue
            out += self._write(record)
        return bytes(out)

    def _write(self, record: LogLine) -> bytes:
        chunk = record.content + (b"" if record.partial else b"\n")
        if self.opts.timestamps and self._new_line:
            chunk = record.raw_timestamp.encode() + b" " + chunk
        self._new_line = not record.partial
        if self.opts.stream != "All" and record.stream != self.opts.stream.lower():
            return b""
        if self._remaining is not None:
            chunk = chunk[:self._remaining]
            self._remaining -= len(chunk)
            self.done = self._remaining <= 0
        return chunk
