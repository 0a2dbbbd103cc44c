"""The /containerLogs query decoder and the record-by-record formatter (pure, no sockets)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minikubelet.podlogs import LogFormatter, LogQuery, LogQueryError, parse_log_query, tail_offset

REC = [
    b"2026-11-28T12:00:00.100000000Z stdout F one\n",
    b"2026-11-28T12:00:01.000000000Z stderr F two\n",
    b"2026-11-28T12:00:02.5Z stdout P thr\n",
    b"2026-11-28T12:00:02.6Z stdout F ee\n",
    b"2026-11-28T12:00:03Z stdout F four\n",
]
FILE = b"".join(REC)
T12 = 1795867200 * 10**9  # 2026-11-28T12:00:00Z


def fmt(**opts: Any) -> bytes:
    f = LogFormatter(LogQuery(**opts), T12 + 10 * 10**9)
    data = FILE
    return f.feed(data) + f.flush()


@pytest.mark.parametrize(("query", "expected"), [
    ({}, LogQuery()),
    ({"follow": "true", "timestamps": "1", "previous": "false"}, LogQuery(follow=True, timestamps=True)),
    ({"follow": "yes"}, LogQuery(follow=True)),  # Go's query decoder: anything but false/0/no is true
    ({"tailLines": "3"}, LogQuery(tail_lines=3)),
    ({"tail": "5"}, LogQuery(tail_lines=5)),
    ({"tail": "all", "tailLines": "2"}, LogQuery()),
    ({"tailLines": ""}, LogQuery()),
    ({"sinceSeconds": "10"}, LogQuery(since_seconds=10)),
    ({"sinceTime": "2026-11-28T12:00:01Z"}, LogQuery(since_time_ns=T12 + 10**9)),
    ({"limitBytes": "7", "stream": "Stderr"}, LogQuery(limit_bytes=7, stream="Stderr")),
], ids=["empty", "bools", "go-bool", "tailLines", "legacy-tail", "tail-all", "empty-int", "sinceSeconds",
        "sinceTime", "limit-stream"])
def test_parse_query(query: dict[str, str], expected: LogQuery) -> None:
    assert parse_log_query(query) == expected


@pytest.mark.parametrize(("query", "status", "text"), [
    ({"tailLines": "abc"}, 400, "tailLines='abc' is not an integer"),
    ({"limitBytes": "1e3"}, 400, "limitBytes='1e3' is not an integer"),
    ({"sinceTime": "yesterday"}, 400, "sinceTime='yesterday' is not an RFC3339 time"),
    ({"tailLines": "-1"}, 422, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
    ({"limitBytes": "0"}, 422, "limitBytes: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": "0"}, 422, "sinceSeconds: Invalid value: 0: must be greater than 0"),
    ({"sinceSeconds": "5", "sinceTime": "2026-11-28T12:00:01Z"}, 422, "at most one of `sinceTime` or"),
    ({"stream": "Both"}, 422, 'stream: Unsupported value: "Both"'),
    ({"stream": "Stdout", "tailLines": "1"}, 422, "`tailLines` and specific `stream` are mutually exclusive"),
], ids=["int", "float", "time", "neg-tail", "zero-limit", "zero-since", "both-since", "stream", "tail+stream"])
def test_bad_query(query: dict[str, str], status: int, text: str) -> None:
    with pytest.raises(LogQueryError) as e:
        parse_log_query(query)
    assert e.value.status == status and text in str(e.value)


@given(st.dictionaries(st.sampled_from(["follow", "tail", "tailLines", "sinceSeconds", "sinceTime",
                                        "limitBytes", "stream", "timestamps", "previous"]), st.text(max_size=30)))
def test_query_decoder_never_crashes(query: dict[str, str]) -> None:
    try:
        parse_log_query(query)
    except LogQueryError as e:
        assert e.status in (400, 422) and str(e)


def test_partials_join_and_timestamps_prefix_only_line_starts() -> None:
    assert fmt() == b"one\ntwo\nthree\nfour\n"
    assert fmt(timestamps=True) == (b"2026-11-28T12:00:00.100000000Z one\n2026-11-28T12:00:01.000000000Z two\n"
                                    b"2026-11-28T12:00:02.500000000Z three\n2026-11-28T12:00:03.000000000Z four\n")


@pytest.mark.parametrize(("opts", "expected"), [
    ({"stream": "Stdout"}, b"one\nthree\nfour\n"),
    ({"stream": "Stderr"}, b"two\n"),
    ({"since_time_ns": T12 + 2 * 10**9}, b"three\nfour\n"),
    ({"since_seconds": 8}, b"three\nfour\n"),  # now is 12:00:10
    ({"limit_bytes": 6}, b"one\ntw"),
    ({"limit_bytes": 12, "timestamps": True}, b"2026-11-28T1"),
    ({"stream": "Stderr", "limit_bytes": 2}, b"tw"),  # stdout bytes do not count
], ids=["stdout", "stderr", "sinceTime", "sinceSeconds", "limit", "limit-counts-timestamps", "limit-per-stream"])
def test_filters(opts: dict[str, Any], expected: bytes) -> None:
    assert fmt(**opts) == expected


def test_limit_reached_marks_done_and_ignores_more() -> None:
    f = LogFormatter(LogQuery(limit_bytes=3), T12)
    assert f.feed(REC[0]) == b"one" and f.done
    assert f.feed(REC[1]) == b""


def test_torn_lines_wait_for_their_newline_and_bad_records_are_skipped() -> None:
    f = LogFormatter(LogQuery(), T12)
    assert f.feed(REC[0][:10]) == b""
    assert f.feed(REC[0][10:] + b"garbage line\n" + REC[1][:5]) == b"one\n"
    assert f.feed(REC[1][5:]) == b"two\n"
    assert f.feed(b"2026-11-28T12:00:09Z stdout F no newline yet") == b""
    assert f.flush() == b"no newline yet\n"


@pytest.mark.parametrize(("data", "n", "expected"), [
    (FILE, 2, REC[3] + REC[4]), (FILE, 0, b""), (FILE, 99, FILE), (FILE[:-1], 1, REC[4][:-1]), (b"", 3, b""),
], ids=["two", "zero", "more-than-all", "no-final-newline", "empty"])
def test_tail_offset(data: bytes, n: int, expected: bytes) -> None:
    assert data[tail_offset(data, n):] == expected


@given(st.binary(max_size=300), st.integers(0, 20))
def test_formatter_never_raises(data: bytes, split: int) -> None:
    f = LogFormatter(LogQuery(timestamps=True, limit_bytes=50), T12)
    out = f.feed(data[:split]) + f.feed(data[split:]) + f.flush()
    assert len(out) <= 50
