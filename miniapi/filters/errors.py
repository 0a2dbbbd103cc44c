"""WithPanicRecovery + Status rendering: the outermost filter.

Every :class:`~miniapi.errors.ApiError` raised below becomes a Kubernetes ``Status`` with the same HTTP
code; anything unexpected becomes a 500 ``InternalError`` Status (logged with the traceback), never a
bare aiohttp error page. aiohttp's own HTTP errors (404 for no route, 413 body too large, 405) are
translated too.
"""

from __future__ import annotations

import logging

from aiohttp import web

from miniapi.endpoints.negotiation import json_response
from miniapi.errors import ApiError, internal
from miniapi.filters import Handler

log = logging.getLogger("miniapi")


def status_response(err: ApiError, request: web.Request | None = None) -> web.Response:
    """The Status, encoded as the API codec does (indented for curl & co.)."""
    return json_response(err.status(), err.code, request=request)


_HTTP_REASONS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "RequestEntityTooLarge",
                 415: "UnsupportedMediaType"}


def with_panic_recovery(handler: Handler) -> Handler:
    async def recover(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as err:
            return status_response(err, request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            reason = _HTTP_REASONS.get(exc.status, "InternalError" if exc.status >= 500 else "BadRequest")
            if isinstance(exc, web.HTTPRequestEntityTooLarge):  # handlers/rest.go limitedReadBody
                from miniapi.app import MAX_REQUEST_BYTES

                return status_response(ApiError(413, reason, "Request entity too large: limit is "
                                                f"{MAX_REQUEST_BYTES}"), request)
            return status_response(ApiError(exc.status, reason, exc.reason if exc.text is None else
                                            exc.text.removeprefix(f"{exc.status}: ")), request)
        except (ConnectionResetError, web.HTTPClientError):
            raise
        except Exception as exc:  # noqa: BLE001 - this is the panic recovery
            log.exception("panic serving %s %s", request.method, request.path)
            return status_response(internal(f"{type(exc).__name__}: {exc}"), request)

    return recover
