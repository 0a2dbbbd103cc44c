"""CRI log format: what the shim writes, byte by byte, and what the reader makes of it."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minikubelet.logs import (
    MAX_LINE,
    CriLogWriter,
    LogOptions,
    format_timestamp,
    parse_line,
    parse_timestamp,
    read_log,
    read_records,
    select,
)

T0 = 1_795_860_000_123_456_789  # 2026-11-28T10:00:00.123456789Z


def writer() -> tuple[CriLogWriter, io.BytesIO]:
    out = io.BytesIO()
    return CriLogWriter(out, clock=iter(range(T0, T0 + 10_000))), out


def test_timestamps_have_nine_digits_and_round_trip() -> None:
    assert format_timestamp(T0) == "2026-11-28T10:00:00.123456789Z"
    assert format_timestamp(T0 - 123_456_789) == "2026-11-28T10:00:00.000000000Z"
    assert parse_timestamp("2026-11-28T10:00:00.123456789Z") == T0
    assert parse_timestamp("2026-11-28T11:00:00.123456789+01:00") == T0
    assert parse_timestamp("2026-11-28T10:00:00Z") == T0 - 123_456_789
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def test_full_lines_byte_by_byte() -> None:
    w, out = writer()
    w.write("stdout", b"hello\nwor")
    w.write("stderr", b"oops\n")
    w.write("stdout", b"ld\n")
    assert out.getvalue() == (b"2026-11-28T10:00:00.123456789Z stdout F hello\n"
                              b"2026-11-28T10:00:00.123456790Z stderr F oops\n"
                              b"2026-11-28T10:00:00.123456791Z stdout F world\n")


def test_an_unterminated_line_is_written_full_when_the_stream_ends() -> None:
    w, out = writer()
    w.write("stdout", b"no newline")
    assert out.getvalue() == b""
    w.close_stream("stdout")
    assert out.getvalue() == b"2026-11-28T10:00:00.123456789Z stdout F no newline\n"


def test_a_long_line_is_split_into_partials() -> None:
    w, out = writer()
    w.write("stdout", b"x" * (MAX_LINE + 10) + b"\n")
    lines = out.getvalue().splitlines()
    assert [line.split(b" ")[2] for line in lines] == [b"P", b"F"]
    assert [m.content for m in select(read_records(out.getvalue()), LogOptions())] == [b"x" * (MAX_LINE + 10)]


def test_parse_line() -> None:
    rec = parse_line(b"2026-11-28T10:00:00.123456789Z stderr P a b  c\n")
    assert (rec.timestamp, rec.stream, rec.partial, rec.content) == (T0, "stderr", True, b"a b  c")
    with pytest.raises(ValueError):
        parse_line(b"not a log line\n")


def sample(tmp_path: object) -> str:
    w, out = writer()
    for i in range(5):
        w.write("stdout" if i % 2 == 0 else "stderr", f"line {i}\n".encode())
    path = f"{tmp_path}/0.log"
    with open(path, "wb") as f:
        f.write(out.getvalue() + b"2026-11-28T10:00:0")  # a torn last record is ignored
    return path


@pytest.mark.parametrize("opts, expect", [
    (LogOptions(), b"line 0\nline 1\nline 2\nline 3\nline 4\n"),
    (LogOptions(tail_lines=2), b"line 3\nline 4\n"),
    (LogOptions(tail_lines=0), b""),
    (LogOptions(stream="Stderr"), b"line 1\nline 3\n"),
    (LogOptions(since_ns=T0 + 3), b"line 3\nline 4\n"),
    (LogOptions(limit_bytes=9), b"line 0\nli"),
    (LogOptions(tail_lines=1, timestamps=True), b"2026-11-28T10:00:00.123456793Z line 4\n"),
], ids=["all", "tail", "tail-0", "stderr", "since", "limit", "timestamps"])
def test_reader_options(tmp_path: object, opts: LogOptions, expect: bytes) -> None:
    assert read_log(sample(tmp_path), opts) == expect


@given(st.lists(st.tuples(st.sampled_from(["stdout", "stderr"]), st.binary(max_size=300)), max_size=20))
def test_whatever_is_written_is_read_back_per_stream(chunks: list[tuple[str, bytes]]) -> None:
    out = io.BytesIO()
    w = CriLogWriter(out)
    for stream, data in chunks:
        w.write(stream, data)
    w.close_stream("stdout")
    w.close_stream("stderr")
    for stream in ("stdout", "stderr"):
        sent = b"".join(d for s, d in chunks if s == stream)
        got = [m.content for m in select(read_records(out.getvalue()), LogOptions(stream=stream.capitalize()))]
        expected = sent.split(b"\n")
        if expected and expected[-1] == b"":
            expected.pop()
        assert got == expected
