"""A backend for the apiserver-proxy tests: an aiohttp app that shows what reached it.

In-process (:func:`start`) or as a process (``python proxy_backend.py HOST PORT [CERT KEY [CLIENT_CA]]``):

* any path: JSON echo of method, raw path, query, headers, body size and the peer's certificate;
* ``/redirect`` -> 302 to ``http://<itself>/landed``; ``/redirect-away`` -> 302 to another host;
  ``/landed`` counts its hits (a proxy that followed a redirect would show up there);
* ``/stream``: ``first`` at once, ``second`` only after ``/release`` (proves streaming);
* ``/upload``: reads the body chunk by chunk; ``/upload-first`` answers after the first chunk;
* ``/ws``: a WebSocket that echoes; ``/ws-redirect``: an upgrade answered with 302;
* ``/html``: :data:`PAGE`, links to itself and elsewhere (``?encoding=gzip|deflate|zlib|broken``,
  ``?type=`` another Content-Type).
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import zlib
from dataclasses import dataclass, field

from aiohttp import web

# /html: links to itself (absolute URL and absolute path), a relative one, one to another host
PAGE = ('<!DOCTYPE html>\n<html><head><link rel=stylesheet href="/static/site.css"><script src="app.js"></script>'
        '</head>\n<body><a href="{self}/landed">self</a> <a href="/landed">root</a> <a href="next.html">relative</a>'
        ' <a href="http://example.invalid/away">away</a>\n<IMG SRC=/logo.png alt=\'a&amp;b\'><br/>'
        '<form action="/upload" method=post></form></body></html>\n')


@dataclass
class State:
    landed: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    first_chunk: asyncio.Event = field(default_factory=asyncio.Event)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
    peer = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
    return web.json_response({"method": request.method, "path": request.raw_path.partition("?")[0],
                              "query": request.raw_path.partition("?")[2],
                              "headers": [[k, v] for k, v in request.headers.items()],
                              "bodyBytes": len(body), "tls": ssl_obj is not None, "peerCert": peer is not None,
                              "host": request.host})


def app(state: State | None = None) -> web.Application:
    st = state or State()
    a = web.Application()

    async def redirect(request: web.Request) -> web.Response:
        own = request.transport.get_extra_info("sockname") if request.transport else ("?", 0)
        raise web.HTTPFound(f"http://{own[0]}:{own[1]}/landed")

    async def redirect_away(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://127.0.0.1:1/elsewhere")

    async def landed(request: web.Request) -> web.Response:
        st.landed += 1
        return web.Response(text="landed\n")

    async def stream(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(b"first\n")
        await asyncio.wait_for(st.release.wait(), 20)
        await resp.write(b"second\n")
        await resp.write_eof()
        return resp

    async def release(request: web.Request) -> web.Response:
        st.release.set()
        return web.Response(text="ok\n")

    async def upload(request: web.Request) -> web.Response:
        total = 0
        async for data in request.content.iter_any():
            total += len(data)
        return web.json_response({"bodyBytes": total})

    async def upload_first(request: web.Request) -> web.Response:
        data = await request.content.readany()
        st.first_chunk.set()
        rest = 0
        async for more in request.content.iter_any():
            rest += len(more)
        return web.json_response({"first": data.decode(), "rest": rest})

    async def first_chunk_seen(request: web.Request) -> web.Response:
        await asyncio.wait_for(st.first_chunk.wait(), 20)
        return web.Response(text="seen\n")

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        async for msg in sock:
            await sock.send_str("echo:" + msg.data)
        return sock

    async def ws_redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/landed")

    async def html(request: web.Request) -> web.Response:
        own = request.transport.get_extra_info("sockname") if request.transport else ("?", 0)
        page = PAGE.replace("{self}", f"http://{own[0]}:{own[1]}").encode()
        encoding = request.query.get("encoding", "")
        if encoding in ("gzip", "deflate", "zlib"):
            wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": -zlib.MAX_WBITS, "zlib": zlib.MAX_WBITS}[encoding]
            packer = zlib.compressobj(wbits=wbits)
            page = packer.compress(page) + packer.flush()
        elif encoding == "broken":  # says gzip, is not
            page = b"not gzip at all"
        header = {"gzip": "gzip", "deflate": "deflate", "zlib": "deflate", "broken": "gzip"}.get(encoding)
        headers = {"Content-Encoding": header} if header else {}
        return web.Response(body=page, content_type=request.query.get("type", "text/html"), headers=headers)

    a.router.add_route("*", "/redirect", redirect)
    a.router.add_route("*", "/redirect-away", redirect_away)
    a.router.add_get("/landed", landed)
    a.router.add_get("/stream", stream)
    a.router.add_get("/release", release)
    a.router.add_post("/upload", upload)
    a.router.add_post("/upload-first", upload_first)
    a.router.add_get("/first-chunk-seen", first_chunk_seen)
    a.router.add_get("/ws", ws)
    a.router.add_get("/ws-redirect", ws_redirect)
    a.router.add_get("/html", html)
    a.router.add_route("*", "/{tail:.*}", echo)
    return a


async def start(host: str, port: int, ssl_ctx: ssl.SSLContext | None = None,
                state: State | None = None) -> web.AppRunner:
    runner = web.AppRunner(app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_ctx).start()
    return runner


def server_context(cert: str, key: str, client_ca: str = "") -> ssl.SSLContext:
    """TLS with ``cert``; a client certificate is asked for (signed by ``client_ca``, default the
    serving cert itself) so that the echo can report whether the proxy presented one."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(client_ca or cert)
    return ctx


async def _main(argv: list[str]) -> None:
    host, port = argv[0], int(argv[1])
    ctx = server_context(*argv[2:5]) if len(argv) >= 4 else None
    await start(host, port, ctx)
    print(f"serving on {host}:{port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
