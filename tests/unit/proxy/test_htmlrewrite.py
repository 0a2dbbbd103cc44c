"""The proxy's HTML link rewriting (miniapi/proxy/htmlrewrite.py), byte by byte: which pages, which
attributes, which URLs, the Content-Encodings, broken input. Hypothesis: any bytes, never an error."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.proxy import htmlrewrite
from miniapi.proxy.htmlrewrite import applies, rewrite_body, rewrite_html
from miniapi.proxy.target import rewrite_location

PREFIX = "/api/v1/namespaces/default/pods/web:8080/proxy"
BACKEND, API = "127.245.1.2:8080", "127.0.0.1:6443"


def rewrite(url: str) -> str:
    return rewrite_location(url, BACKEND, API, PREFIX)


PAGE = (b'<!DOCTYPE html>\n<html><head><link rel=stylesheet href="/static/site.css"><script src="app.js"></script>'
        b'</head>\n<body><a href="http://127.245.1.2:8080/landed">self</a> <a href="/landed">root</a> '
        b'<a href="next.html">relative</a> <a href="http://example.invalid/away">away</a>\n'
        b"<IMG SRC=/logo.png alt='a&amp;b'><br/><form action=\"/upload\" method=post></form></body></html>\n")
REWRITTEN = (
    b'<!DOCTYPE html>\n<html><head><link rel="stylesheet" href="' + PREFIX.encode() + b'/static/site.css">'
    b'<script src="app.js"></script></head>\n<body><a href="' + PREFIX.encode() + b'/landed">self</a> '
    b'<a href="' + PREFIX.encode() + b'/landed">root</a> <a href="next.html">relative</a> '
    b'<a href="http://example.invalid/away">away</a>\n<img src="' + PREFIX.encode() + b'/logo.png" alt="a&amp;b">'
    b'<br/><form action="' + PREFIX.encode() + b'/upload" method="post"></form></body></html>\n')


def test_a_page_with_relative_and_absolute_links() -> None:
    assert rewrite_html(PAGE, rewrite) == REWRITTEN


@pytest.mark.parametrize("page,want", [
    (b'<a href="http://127.245.1.2:8080/x?q=1#top">', f'<a href="{PREFIX}/x?q=1#top">'),  # the backend itself
    (b'<a href="http://127.0.0.1:6443/x">', f'<a href="http://127.0.0.1:6443{PREFIX}/x">'),  # the request's Host
    (b'<a href="http://127.245.1.2:9999/x">', '<a href="http://127.245.1.2:9999/x">'),  # another port: another host
    (b'<a href="//elsewhere/x">', '<a href="//elsewhere/x">'),
    (b'<a href="' + PREFIX.encode() + b'/already">', f'<a href="{PREFIX}/already">'),  # has the prefix
    (b'<a href="/dir/">', f'<a href="{PREFIX}/dir/">'),  # trailing slash kept
    (b'<a href="?page=2">', '<a href="?page=2">'),
    (b'<a href="mailto:a@b">', '<a href="mailto:a@b">'),
], ids=["backend-host", "request-host", "other-port", "protocol-relative", "prefixed", "slash", "query", "mailto"])
def test_which_urls(page: bytes, want: str) -> None:
    assert rewrite_html(page, rewrite) == want.encode()


@pytest.mark.parametrize("tag", [
    '<a href="/x">', '<img src="/x">', '<script src="/x">', '<link href="/x">', '<form action="/x">',
    '<iframe src="/x">', '<video poster="/x">', '<input formaction="/x">', '<object data="/x">',
    '<body background="/x">', '<html manifest="/x">', '<base href="/x">',
])
def test_every_url_attribute_of_the_real_table(tag: str) -> None:
    name = tag[1:].split()[0]
    attr = tag.split()[1].split("=")[0]
    assert attr in htmlrewrite.URL_ATTRS[name]
    out = rewrite_html(tag.encode(), rewrite).decode()
    assert out.startswith(f'<{name} {attr}="{PREFIX}/x"') if name not in htmlrewrite.RAW_TEXT else PREFIX in out


@pytest.mark.parametrize("page,want", [
    (b'<div data-src="/x" title=/x>', b'<div data-src="/x" title="/x">'),  # not URL attributes: only requoted
    (b'<a name=top HREF=/x Target=_blank>', f'<a name="top" href="{PREFIX}/x" target="_blank">'.encode()),
    (b'<a href="/x" download>', f'<a href="{PREFIX}/x" download="">'.encode()),
    (b'<br/><hr />', b'<br/><hr/>'),
    (b"<a title='say \"hi\"' href=\"/a&amp;b\">", f'<a title="say &#34;hi&#34;" href="{PREFIX}/a&amp;b">'.encode()),
    (b'<a title="&amp=x &ampx &lt">', b'<a title="&amp;amp=x &amp;ampx &lt;">'),
    (b'</A  ><!-- <a href=/c> --><!doctype html><?php x ?>', b'</A  ><!-- <a href=/c> --><!doctype html><?php x ?>'),
    (b'<style>a{background:url(/bg.png)}</style>', b'<style>a{background:url(/bg.png)}</style>'),  # CSS: as real
    (b'<script>if (a<b) x("<a href=/y>")</script><a href=/z>',
     f'<script>if (a<b) x("<a href=/y>")</script><a href="{PREFIX}/z">'.encode()),
    (b'<textarea><a href=/t></textarea >', b'<textarea><a href=/t></textarea >'),
    (b'<script/><a href=/s></script>', b'<script/><a href=/s></script>'),  # Go: raw text even after "/>"
], ids=["other-attrs", "case", "no-value", "self-closing", "quotes-escaped", "attr-entities", "other-markup",
        "css-untouched", "script-text", "rcdata",
        "self-closing-script"])
def test_tags_are_written_as_go_writes_them(page: bytes, want: bytes) -> None:
    assert rewrite_html(page, rewrite) == want


@pytest.mark.parametrize("page", [
    b'<a href="/x', b"<a href=", b"<", b"a < b <", b"<a", b"<!-- never closed", b"<script>no end",
    b"\xff\xfe<a>\xc3", b"<a\x00 href=/x>", b"</", b"<a =x>", b"<a/ / />", b"<p <p>",
], ids=repr)
def test_broken_html_never_raises(page: bytes) -> None:
    out = rewrite_html(page, rewrite)
    assert isinstance(out, bytes)


def test_broken_html_keeps_what_it_does_not_understand() -> None:
    assert rewrite_html(b'<p>x</p><a href="/never-closed', rewrite) == b'<p>x</p><a href="/never-closed'
    assert rewrite_html(b"\xff<a href=/x>\xc3", rewrite) == b'\xff<a href="' + PREFIX.encode() + b'/x">\xc3'


@given(st.binary(max_size=300))
def test_any_bytes_never_raise(page: bytes) -> None:
    rewrite_html(page, rewrite)


@given(st.sampled_from(["a href", "img src", "form action", "A HREF"]), st.binary(max_size=40))
def test_any_bytes_in_a_link_never_raise(tag: str, url: bytes) -> None:
    for quoted in (b'"' + url + b'"', url):
        rewrite_html(b"<" + tag.encode() + b"=" + quoted + b">", rewrite)


def test_a_link_that_is_not_utf8_is_escaped_as_go_escapes_it() -> None:
    assert rewrite_html(b'<a href="/x\xff">', rewrite) == f'<a href="{PREFIX}/x%FF">'.encode()
    assert rewrite_html(b'<a href="http://[::1">', rewrite) == b'<a href="http://[::1">'  # unparsable: as it was


@given(st.text(alphabet=st.characters(blacklist_characters="<"), max_size=200))
def test_text_without_markup_is_unchanged(text: str) -> None:
    page = text.encode("utf-8", "surrogatepass")
    assert rewrite_html(page, rewrite) == page


# -- Content-Encoding ---------------------------------------------------------------------------------

def test_gzip_page_is_rewritten_and_gzipped_again() -> None:
    out = rewrite_body(gzip.compress(PAGE), "gzip", rewrite)
    assert out is not None and out[:2] == b"\x1f\x8b" and gzip.decompress(out) == REWRITTEN


@pytest.mark.parametrize("wbits", [-zlib.MAX_WBITS, zlib.MAX_WBITS], ids=["raw-deflate", "zlib"])
def test_deflate_page_comes_back_in_its_own_format(wbits: int) -> None:
    packer = zlib.compressobj(wbits=wbits)
    out = rewrite_body(packer.compress(PAGE) + packer.flush(), "deflate", rewrite)
    assert out is not None and zlib.decompress(out, wbits) == REWRITTEN


@pytest.mark.parametrize("body,encoding", [
    (b"not gzip", "gzip"), (gzip.compress(PAGE)[:-12], "gzip"), (gzip.compress(PAGE) + b"junk", "gzip"),
    (b"\x00\x01", "deflate"), (PAGE, "br"),
], ids=["garbage", "cut-short", "trailing", "deflate-garbage", "unknown"])
def test_bodies_that_do_not_decode_are_left_alone(body: bytes, encoding: str) -> None:
    assert rewrite_body(body, encoding, rewrite) is None


def test_a_decompression_bomb_is_not_inflated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(htmlrewrite, "MAX_BODY", 1000)
    assert rewrite_body(gzip.compress(b"<p>" * 1000), "gzip", rewrite) is None
    assert rewrite_body(b"<p>" * 1000, "", rewrite) is None
    assert rewrite_body(b"<p>" * 300, "", rewrite) == b"<p>" * 300


# -- when -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("headers,want", [
    ([("Content-Type", "text/html")], True),
    ([("content-type", "text/html; charset=utf-8")], True),
    ([("Content-Type", "text/html"), ("Content-Encoding", "gzip")], True),
    ([("Content-Type", "text/html"), ("Content-Encoding", "deflate")], True),
    ([("Content-Type", "text/html"), ("Content-Encoding", "br")], False),
    ([("Content-Type", "text/html"), ("Location", "/x")], False),  # a redirect: its Location only
    ([("Content-Type", "application/xhtml+xml")], False),
    ([("Content-Type", "Text/HTML")], False),  # the real comparison is exact
    ([("Content-Type", "text/plain")], False),
    ([], False),
], ids=["html", "charset", "gzip", "deflate", "br", "redirect", "xhtml", "case", "plain", "none"])
def test_applies(headers: list[tuple[str, str]], want: bool) -> None:
    assert applies(headers) is want
