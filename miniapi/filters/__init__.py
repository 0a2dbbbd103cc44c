"""The apiserver's filters, one per file. A filter wraps the next handler and returns the wrapped one,
as ``WithAuthentication(handler, ...)`` does in k8s.io/apiserver; :func:`miniapi.app.build_app` lists
them in request order and folds them around the router, so a request runs through plain awaits, with
no per-request middleware machinery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Filter = Callable[[Handler], Handler]
