"""Links in proxied ``text/html`` pages, pointed back through the proxy (apimachinery proxy/transport.go).

The real pod, service and node proxies wrap their transport (``WrapTransport: true``) so that a page a
backend serves still works when it is read through ``/api/v1/namespaces/NS/pods/NAME:PORT/proxy/``:
an absolute link the backend wrote for itself (``/static/app.css``, ``http://10.0.0.5:8080/login``)
would otherwise leave the proxy. Sans-IO: bytes in, bytes out; :mod:`miniapi.endpoints.proxy` decides
when it applies and does the I/O.

1. **When** (:func:`applies`): the response has no (or an empty) ``Location`` (a redirect gets only its Location
   rewritten), its ``Content-Type`` without parameters is exactly ``text/html``, and its
   ``Content-Encoding`` is none, ``gzip`` or ``deflate``; any other encoding passes untouched, as the
   real one logs "can't understand this so not fixing links".
2. **Which attributes** (:data:`URL_ATTRS`, the real ``atomsToAttrs``): ``a href``, ``img src``,
   ``script src``, ``link href``, ``form action``, ... CSS ``url()`` in ``style`` is not rewritten
   (a TODO in the real table too).
3. **How a tag is written back** (Go's ``html.Token.String``): every start tag, not only those with a
   link, is written anew: name and attribute names in lower case, each value unescaped and then
   escaped again in double quotes (``&``, ``'``, ``<``, ``>``, ``"``, CR), a self-closing tag as
   ``<br/>``. Text, end tags, comments, doctypes and the content of ``script``/``style``-like
   elements pass byte for byte. So ``<IMG SRC=/logo.png alt='a&b'>`` becomes
   ``<img src="/api/v1/namespaces/default/pods/web:8080/proxy/logo.png" alt="a&amp;b">``.
4. **Which URLs** (``rewriteURL``, shared with the Location rule of :mod:`miniapi.proxy.target`): an
   absolute path, or an absolute URL naming the backend's host:port (or the request's Host), gets
   the proxy prefix; relative URLs and other hosts are left alone.
5. **Never an error**: broken HTML is tokenized as leniently as browsers do (an unfinished tag at the
   end passes as it is); a body that does not decode as its Content-Encoding says is passed on
   untouched (the real proxy would answer 500). Encoded bodies are encoded again the same way
   (gzip; deflate raw as Go's ``compress/flate`` writes it, or zlib-wrapped if it came so).
6. **Bounded**: the real transport reads the whole page into memory, without a limit. Here a page is
   rewritten only up to :data:`MAX_BODY` (4 MiB) as received and as decoded (no decompression bomb);
   a larger one is streamed on unchanged. Rewriting costs about 1 s of CPU per MiB here (pure
   Python), so the limit also caps what one backend page can cost; large pages are rewritten off
   the event loop.
"""

from __future__ import annotations

import html
import re
import zlib
from collections.abc import Callable, Iterable
from html.entities import html5

MAX_BODY = 4 << 20  # 4 MiB, received and decoded

URL_ATTRS: dict[str, frozenset[str]] = {
    name: frozenset(attrs.split()) for name, attrs in {
        "a": "href", "applet": "codebase", "area": "href", "audio": "src", "base": "href",
        "blockquote": "cite", "body": "background", "button": "formaction", "command": "icon",
        "del": "cite", "embed": "src", "form": "action", "frame": "longdesc src", "head": "profile",
        "html": "manifest", "iframe": "longdesc src", "img": "longdesc src usemap",
        "input": "src usemap formaction", "ins": "cite", "link": "href",
        "object": "classid codebase data usemap", "q": "cite", "script": "src", "source": "src",
        "video": "poster src",
    }.items()
}
# after these start tags, the text up to the matching end tag is not markup (Go's rawTag)
RAW_TEXT = frozenset({"iframe", "noembed", "noframes", "noscript", "plaintext", "script", "style", "textarea",
                      "title", "xmp"})

_WS = " \n\r\t\f"
_SKIP_WS = re.compile(f"[{_WS}]*")
_TAG_NAME = re.compile(f"[^{_WS}/>]*")
_ATTR_KEY = re.compile(f"=?[^{_WS}/=>]*")
_UNQUOTED = re.compile(f"[^{_WS}>]*")
_ENTITY = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[A-Za-z0-9]+;?)")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_ESCAPE = str.maketrans({"&": "&amp;", "'": "&#39;", "<": "&lt;", ">": "&gt;", '"': "&#34;", "\r": "&#13;"})

Rewriter = Callable[[str], str]
_LOOKED_AT = frozenset({"content-type", "content-encoding", "location"})


def applies(headers: Iterable[tuple[str, str]]) -> bool:
    """Rule 1, on the response fields the client would get (the first value of each counts)."""
    first: dict[str, str] = {}
    for name, value in headers:
        low = name.lower()
        if low in _LOOKED_AT and low not in first:
            first[low] = value
    if first.get("location"):
        return False
    media = first.get("content-type", "").split(";", 1)[0].strip()
    return media == "text/html" and first.get("content-encoding", "") in ("", "gzip", "deflate")


def rewrite_body(body: bytes, encoding: str, rewrite: Rewriter) -> bytes | None:
    """The page with its links rewritten, encoded as it came; None: leave the body as it is (it does
    not decode as ``encoding`` says, or is larger than MAX_BODY once decoded)."""
    decoded = _decode(body, encoding)
    if decoded is None:
        return None
    page, wrap = decoded
    return wrap(rewrite_html(page, rewrite))


def rewrite_html(page: bytes, rewrite: Rewriter) -> bytes:
    """Rules 2-4 on a decoded page; bytes that are not UTF-8 come through unchanged."""
    text = page.decode("utf-8", "surrogateescape")
    return "".join(_tokens(text, rewrite)).encode("utf-8", "surrogateescape")


# -- the tokenizer (golang.org/x/net/html's rules, start tags only) -------------------------------------

def _tokens(text: str, rewrite: Rewriter) -> Iterable[str]:
    pos, end = 0, len(text)
    while pos < end:
        lt = text.find("<", pos)
        if lt < 0 or lt + 1 >= end:
            yield text[pos:]
            return
        yield text[pos:lt]
        nxt = text[lt + 1]
        if not ("a" <= nxt <= "z" or "A" <= nxt <= "Z"):  # end tag, comment, doctype or just text
            stop = _markup_end(text, lt)
            yield text[lt:stop]
            pos = stop
            continue
        tag = _start_tag(text, lt + 1)
        if tag is None:  # unfinished at the end of the page: passed as it is
            yield text[lt:]
            return
        name, attrs, stop = tag
        closing = text[stop - 2] == "/"
        yield _render(name, attrs, closing, rewrite)
        pos = stop
        if name in RAW_TEXT:  # even when written self-closing, as Go's tokenizer does
            pos = _raw_text_end(text, pos, name)
            yield text[stop:pos]


def _end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where ``pattern`` (which matches the empty string too) stops matching from ``pos``."""
    found = pattern.match(text, pos)
    return found.end() if found else pos


def _markup_end(text: str, lt: int) -> int:
    """Where a non-start-tag construct that starts at ``lt`` ends (its bytes pass unchanged)."""
    if text.startswith("<!--", lt):
        close = text.find("-->", lt + 4)
        return len(text) if close < 0 else close + 3
    if text[lt + 1] in "/!?":
        close = text.find(">", lt + 2)
        return len(text) if close < 0 else close + 1
    return lt + 1  # a lone "<" is text


def _start_tag(text: str, pos: int) -> tuple[str, list[tuple[str, str]], int] | None:
    """Name, attributes (raw values) and the index after ``>``; None when the page ends first."""
    end = len(text)
    name_end = _end(_TAG_NAME, text, pos)
    name = text[pos:name_end].translate(_ASCII_LOWER)
    pos = name_end
    attrs: list[tuple[str, str]] = []
    while True:
        pos = _end(_SKIP_WS, text, pos)
        if pos >= end:
            return None
        if text[pos] == ">":
            return name, attrs, pos + 1
        key_end = _end(_ATTR_KEY, text, pos)
        key = text[pos:key_end]
        pos = key_end + 1 if key_end < end and text[key_end] in _WS + "/" else key_end
        value, pos = _attr_value(text, pos)
        if key:
            attrs.append((key.translate(_ASCII_LOWER), value))


def _attr_value(text: str, pos: int) -> tuple[str, int]:
    end = len(text)
    after_ws = _end(_SKIP_WS, text, pos)
    if after_ws >= end or text[after_ws] != "=":
        return "", after_ws
    pos = _end(_SKIP_WS, text, after_ws + 1)
    if pos >= end or text[pos] == ">":
        return "", pos
    quote = text[pos]
    if quote in "\"'":
        close = text.find(quote, pos + 1)
        if close < 0:
            return text[pos + 1:], end
        return text[pos + 1:close], close + 1
    stop = _end(_UNQUOTED, text, pos)
    return text[pos:stop], stop


def _raw_text_end(text: str, pos: int, name: str) -> int:
    """The start of ``</name`` (any case) followed by whitespace, ``/`` or ``>``; the end if none."""
    if name == "plaintext":
        return len(text)
    closing = re.compile(f"</{re.escape(name)}(?=[{_WS}/>])", re.IGNORECASE)
    found = closing.search(text, pos)
    return found.start() if found else len(text)


def _render(name: str, attrs: list[tuple[str, str]], closing: bool, rewrite: Rewriter) -> str:
    linked = URL_ATTRS.get(name, frozenset())
    parts = [name]
    for key, raw in attrs:
        value = _unescape_attr(raw)
        if key in linked:
            value = _rewritten(value, rewrite)
        parts.append(f'{key}="{value.translate(_ESCAPE)}"')
    return "<" + " ".join(parts) + ("/>" if closing else ">")


def _rewritten(url: str, rewrite: Rewriter) -> str:
    """``rewrite(url)``, or ``url`` as it was when it cannot be parsed (Go: url.Parse fails)."""
    try:
        return rewrite(url)
    except (ValueError, UnicodeError):
        return url


def _unescape_attr(value: str) -> str:
    """Character references in an attribute value, as an HTML5 tokenizer reads them there: a named
    one without ``;`` followed by ``=`` stays as written; unknown names stay as written. Line breaks
    are normalised first (CR LF and CR become LF), as the tokenizer does."""
    if "\r" in value:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    if "&" not in value:
        return value

    def one(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref.startswith("#"):
            return html.unescape(match.group(0))
        if not ref.endswith(";") and value[match.end():match.end() + 1] == "=":
            return match.group(0)
        return html5.get(ref, match.group(0))

    return _ENTITY.sub(one, value)


# -- Content-Encoding ---------------------------------------------------------------------------------

def _decode(body: bytes, encoding: str) -> tuple[bytes, Callable[[bytes], bytes]] | None:
    if len(body) > MAX_BODY:
        return None
    if encoding == "":
        return body, bytes
    if encoding == "gzip":
        return _inflate(body, 16 + zlib.MAX_WBITS, lambda page: _deflate(page, 16 + zlib.MAX_WBITS))
    if encoding == "deflate":  # Go reads raw DEFLATE; most servers send it zlib-wrapped: both are read
        return (_inflate(body, -zlib.MAX_WBITS, lambda page: _deflate(page, -zlib.MAX_WBITS))
                or _inflate(body, zlib.MAX_WBITS, lambda page: _deflate(page, zlib.MAX_WBITS)))
    return None


def _inflate(body: bytes, wbits: int, wrap: Callable[[bytes], bytes]
             ) -> tuple[bytes, Callable[[bytes], bytes]] | None:
    inflater = zlib.decompressobj(wbits)
    try:
        page = inflater.decompress(body, MAX_BODY + 1)
    except zlib.error:
        return None
    if len(page) > MAX_BODY or not inflater.eof or inflater.unused_data:
        return None  # too large, cut short, or something after the stream
    return page, wrap


def _deflate(page: bytes, wbits: int) -> bytes:
    deflater = zlib.compressobj(zlib.Z_BEST_COMPRESSION if wbits < 0 else zlib.Z_DEFAULT_COMPRESSION,
                                zlib.DEFLATED, wbits)
    return deflater.compress(page) + deflater.flush()


__all__ = ["MAX_BODY", "URL_ATTRS", "applies", "rewrite_body", "rewrite_html"]
