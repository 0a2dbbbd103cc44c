"""SPDY/3 header blocks: layout, the preset dictionary, and the shared zlib contexts."""

from __future__ import annotations

import hashlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.streaming.errors import ProtocolError
from miniapi.streaming.spdy import FrameParser, SynStreamFrame
from miniapi.streaming.spdy_headers import (
    DICTIONARY,
    HeaderBlockError,
    HeaderCompressor,
    HeaderDecompressor,
    pack_headers,
    unpack_headers,
)
from tests.protocol.captures import messages

ERROR_STREAM = (("port", "80"), ("requestid", "0"), ("streamtype", "error"))


def test_dictionary_is_the_spec_one() -> None:
    assert len(DICTIONARY) == 1423
    assert hashlib.sha256(DICTIONARY).hexdigest().startswith("51d27341373f923f")
    assert zlib.adler32(DICTIONARY).to_bytes(4, "big").hex() == "e3c6a7c2"


def test_block_layout_matches_the_docstring_example() -> None:
    assert pack_headers(ERROR_STREAM).hex(" ") == (
        "00 00 00 03 00 00 00 04 70 6f 72 74 00 00 00 02 38 30 00 00 00 09 72 65 71 75 65 73 74 69 64 "
        "00 00 00 01 30 00 00 00 0a 73 74 72 65 61 6d 74 79 70 65 00 00 00 05 65 72 72 6f 72")
    assert pack_headers(()) == b"\x00\x00\x00\x00"


def test_repeated_names_join_with_nul_and_split_back() -> None:
    block = pack_headers((("a", "1"), ("A", "2")))
    assert block == b"\x00\x00\x00\x01\x00\x00\x00\x01a\x00\x00\x00\x031\x002"
    assert unpack_headers(block) == (("a", "1"), ("a", "2"))


@pytest.mark.parametrize(("block", "reason"), [
    pytest.param(b"\x00\x00", "shorter", id="short-count"),
    pytest.param(b"\x00\x00\x00\x01\x00\x00\x00\x01A\x00\x00\x00\x00", "lowercased", id="uppercase-name"),
    pytest.param(b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00", "zero-length", id="empty-name"),
    pytest.param(pack_headers((("a", "1"),))[:-1], "truncated", id="truncated-value"),
    pytest.param(pack_headers((("a", "1"),)) + b"x", "after the last", id="trailing-bytes"),
    pytest.param(b"\xff\xff\xff\xff", "does not fit", id="huge-count"),
    pytest.param(b"\x00\x00\x00\x02" + pack_headers((("a", "1"),))[4:] * 2, "same name", id="duplicate"),
    pytest.param(b"\x00\x00\x00\x01\xff\xff\xff\xff", "truncated", id="huge-length"),
])
def test_malformed_blocks(block: bytes, reason: str) -> None:
    with pytest.raises(HeaderBlockError, match=reason):
        unpack_headers(block)


def test_kubectl_header_blocks_inflate_in_sequence() -> None:
    """Each block depends on the ones before it: one inflate context per session."""
    wire = b"".join(messages("kubectl_portforward", "c2s"))
    syns = [f for f in FrameParser().feed(wire) if isinstance(f, SynStreamFrame)]
    assert [dict(f.headers) for f in syns[:2]] == [
        {"streamtype": "error", "port": "80", "requestid": "0"},
        {"streamtype": "data", "port": "80", "requestid": "0"}]
    assert [(f.stream_id, dict(f.headers)["requestid"], dict(f.headers)["streamtype"]) for f in syns] == [
        (1, "0", "error"), (3, "0", "data"), (5, "1", "error"), (7, "2", "error"), (9, "1", "data"),
        (11, "2", "data"), (13, "3", "error"), (15, "3", "data")]


def test_first_block_carries_the_zlib_header_later_ones_do_not() -> None:
    deflate = HeaderCompressor()
    first, second = deflate.compress(ERROR_STREAM), deflate.compress(ERROR_STREAM)
    assert first[:6].hex() == "78f9e3c6a7c2"  # same header Go's zlib writes (captured from kubectl)
    assert first.endswith(b"\x00\x00\xff\xff") and second.endswith(b"\x00\x00\xff\xff")
    assert len(second) < len(first)
    inflate = HeaderDecompressor()
    assert inflate.decompress(first) == inflate.decompress(second) == ERROR_STREAM


def test_a_fresh_context_cannot_read_a_later_block() -> None:
    deflate = HeaderCompressor()
    deflate.compress(ERROR_STREAM)
    with pytest.raises(ProtocolError):
        HeaderDecompressor().decompress(deflate.compress(ERROR_STREAM))


def test_zlib_garbage_is_fatal() -> None:
    with pytest.raises(ProtocolError, match="does not inflate"):
        HeaderDecompressor().decompress(b"\x00\x01garbage")


def test_oversized_block_costs_only_its_stream_and_keeps_the_context_in_step() -> None:
    deflate, inflate = HeaderCompressor(), HeaderDecompressor(max_size=1024)
    with pytest.raises(HeaderBlockError, match="larger than 1024"):
        inflate.decompress(deflate.compress((("big", "x" * 200_000),)))
    assert inflate.decompress(deflate.compress(ERROR_STREAM)) == ERROR_STREAM


def test_zip_bomb_is_fatal_not_unbounded() -> None:
    deflate, inflate = HeaderCompressor(), HeaderDecompressor(max_size=16)
    with pytest.raises(ProtocolError, match="sane size"):
        inflate.decompress(deflate.compress((("bomb", "\x00" * 8_000_000),)))


header_names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-0123456789"), min_size=1, max_size=12)
header_values = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=30)


@given(st.lists(st.dictionaries(header_names, header_values, max_size=6), max_size=8))
def test_compress_roundtrip_over_many_blocks(blocks: list[dict[str, str]]) -> None:
    deflate, inflate = HeaderCompressor(), HeaderDecompressor()
    for headers in blocks:
        assert inflate.decompress(deflate.compress(tuple(headers.items()))) == tuple(headers.items())


@given(st.lists(st.binary(max_size=200), max_size=5))
def test_random_blocks_raise_only_documented_errors(blocks: list[bytes]) -> None:
    inflate = HeaderDecompressor(max_size=4096)
    for block in blocks:
        try:
            inflate.decompress(block)
        except HeaderBlockError:
            continue
        except ProtocolError:
            return
