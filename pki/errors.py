"""Errors of the pki package: one shallow hierarchy, so the CLI can catch ``PkiError`` and print it.

``PkiError``
 - ``PemError``: a file or string that should hold a PEM certificate, key or CSR does not.
 - ``SigningError``: the CSR signer refused; ``reason`` is the word the controller-manager puts
   on a Failed CSR condition (``SignerValidationFailure``), ``message`` says what to change.
"""

from __future__ import annotations


class PkiError(Exception):
    """A user-facing failure: bad input, a broken or foreign PKI directory, a refused request."""


class PemError(PkiError):
    """Malformed PEM, or a PEM block of the wrong kind (a key where a certificate was expected)."""


class SigningError(PkiError):
    """The signer refused a CSR. ``reason`` is a CamelCase word, ``message`` a sentence."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
