"""The dialers' errors, worded the way a Go apiserver's would be, so kubectl shows the same text.

One shallow hierarchy; the HTTP layer adds the ``Get "<url>": `` prefix of Go's ``*url.Error``, so
the same error reads, at each layer (kube-apiserver's wording, verbatim)::

    open()   tls: failed to verify certificate: x509: certificate signed by unknown authority
    get()    Get "https://127.0.0.2:10250/containerLogs/default/p/c": tls: failed to verify ...

:func:`to_status` is where one becomes the Kubernetes ``Status`` a client sees: the real apiserver
hands these to ``ErrorToAPIStatus``, which makes a 500 with an empty (Unknown) reason, so kubectl
prints ``Error from server: Get "https://...": ...``.
"""

from __future__ import annotations

from miniapi.errors import ApiError


class DialError(Exception):
    """Reaching the kubelet failed. ``text`` is Go's error string; ``op``/``url`` wrap it like url.Error."""

    def __init__(self, text: str, *, op: str = "", url: str = "") -> None:
        super().__init__(text)
        self.text, self.op, self.url = text, op, url

    def __str__(self) -> str:
        return f'{self.op} "{self.url}": {self.text}' if self.op else self.text

    def at(self, op: str, url: str) -> DialError:
        """The same error as the HTTP client reports it for ``op url`` (Go's url.Error)."""
        err = type(self)(self.text, op=op, url=url)
        err.__cause__ = self.__cause__
        return err


class ConnectError(DialError):
    """TCP: ``dial tcp 127.0.0.2:10250: connect: connection refused``, ``... i/o timeout``."""


class TLSError(DialError):
    """The TLS handshake failed (``remote error: tls: ...``, ``net/http: TLS handshake timeout``)."""


class CertificateError(TLSError):
    """With ``--kubelet-certificate-authority``: ``tls: failed to verify certificate: x509: ...``."""


class ProtocolError(DialError):
    """The kubelet's HTTP/1.1 reply did not parse, or came too late (``net/http: timeout awaiting ...``)."""


class AddressError(DialError):
    """No usable node address: ``no preferred addresses found; known addresses: [...]``."""


def to_status(err: DialError) -> ApiError:
    """ErrorToAPIStatus for a non-Status error: code 500, reason "" (Unknown), the error's text."""
    return ApiError(500, "", str(err))


MAX_ERROR_BODY = 50_000  # genericrest: at most this much of a backend's error body is read

_GENERIC = {  # apimachinery errors.NewGenericServerResponse: code -> (reason, message; None = the body)
    400: ("BadRequest", "the server rejected our request for an unknown reason"),
    401: ("Unauthorized", "the server has asked for the client to provide credentials"),
    403: ("Forbidden", None),
    404: ("NotFound", "the server could not find the requested resource"),
    405: ("MethodNotAllowed", "the server does not allow this method on the requested resource"),
    409: ("Conflict", "the server reported a conflict"),
    422: ("Invalid", "the server rejected our request due to an error in our request"),
    429: ("TooManyRequests", "the server has received too many requests and has asked us to try again later"),
    504: ("Timeout", "the server was unable to return a response in the time allotted, but may still be "
                     "processing the request"),
}


def response_error(code: int, body: bytes, resource: str, name: str) -> ApiError:
    """genericrest.GenericHttpResponseChecker: a backend's non-2xx reply -> the Status the client gets.

    500 -> InternalError with the body; 400 -> BadRequest with the body; anything else the generic
    message plus ``( pods/log p)`` (an empty verb, hence the double space), e.g. a kubelet's 401::

        the server has asked for the client to provide credentials ( pods/log p)
    """
    text = body[:MAX_ERROR_BODY].decode("utf-8", errors="replace")
    if code == 500:
        return ApiError(500, "InternalError", f"Internal error occurred: {text}", {"causes": [{"message": text}]})
    if code == 400:
        return ApiError(400, "BadRequest", text)
    reason, message = _GENERIC.get(code, ("", None))
    if code not in _GENERIC:
        message = (f'an error on the server ("{text}") has prevented the request from succeeding' if code >= 500
                   else f"the server responded with the status code {code} but did not return more information")
        reason = "InternalError" if code >= 500 else ""
    elif message is None:
        message = text
    return ApiError(code, reason, f"{message} ( {resource} {name})", {"name": name, "kind": resource})
