"""csrsigning: issue certificates for approved CSRs of the kubernetes.io signers
(pkg/controller/certificates/signer), with the cluster CA from ``--cluster-signing-cert-file/key-file``.

Rules, in order (the subject/usage rules of each signer live in :mod:`pki.signer`):

1. Skip a CSR that is not Approved, is Denied, already Failed, or already has a certificate.
2. Skip signers other than ``kubernetes.io/kube-apiserver-client-kubelet``,
   ``kubernetes.io/kubelet-serving`` and ``kubernetes.io/kube-apiserver-client`` (another signer's
   controller may own them; ``legacy-unknown`` is never signed).
3. Sign with TTL = ``spec.expirationSeconds`` if set and shorter than ``--cluster-signing-duration``
   (never under 10 minutes), else ``--cluster-signing-duration``.
4. The signed certificate (PEM, base64 in JSON) goes to ``status.certificate`` with a PUT to
   ``.../status``.
5. A request the signer refuses (``SignerValidationFailure``: wrong O/CN/SANs/usages; ``InvalidCSR``)
   gets ``{type: Failed, status: "True", reason: <that reason>, message: <why>}`` via ``.../status``
   and is never retried. Any other failure (an expired CA, an API error) is retried with back-off.
"""

from __future__ import annotations

import base64
import copy
import logging

from cryptography import x509

from miniapi.controllermanager.base import ControllerContext, Obj, condition, format_time, is_true
from miniapi.controllermanager.csrqueue import CERTS, CSRController
from pki.certs import PrivateKey
from pki.errors import SigningError
from pki.signer import (
    INVALID_CSR,
    KUBE_APISERVER_CLIENT,
    KUBE_APISERVER_CLIENT_KUBELET,
    KUBELET_SERVING,
    SIGNER_VALIDATION_FAILURE,
    sign_csr,
)

log = logging.getLogger("miniapi.controllermanager.csrsigning")

SIGNERS = (KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING, KUBE_APISERVER_CLIENT)
FINAL_FAILURES = (SIGNER_VALIDATION_FAILURE, INVALID_CSR)


def should_sign(csr: Obj) -> bool:
    """Rules 1 and 2."""
    if (csr.get("status") or {}).get("certificate"):
        return False
    if not is_true(csr, "Approved") or condition(csr, "Denied") is not None or is_true(csr, "Failed"):
        return False
    return (csr.get("spec") or {}).get("signerName") in SIGNERS


def with_certificate(csr: Obj, cert_pem: bytes) -> Obj:
    out = _copy(csr)
    out.setdefault("status", {})["certificate"] = base64.b64encode(cert_pem).decode()
    return out


def with_failure(csr: Obj, error: SigningError, now: str) -> Obj:
    out = _copy(csr)
    out.setdefault("status", {}).setdefault("conditions", []).append(
        {"type": "Failed", "status": "True", "reason": error.reason, "message": error.message,
         "lastUpdateTime": now, "lastTransitionTime": now})
    return out


def _copy(csr: Obj) -> Obj:
    out = copy.deepcopy(csr)
    out.setdefault("apiVersion", f"{CERTS}/v1")
    out.setdefault("kind", "CertificateSigningRequest")
    return out


def sign(csr: Obj, ca_cert: x509.Certificate, ca_key: PrivateKey, max_duration_seconds: int) -> bytes:
    """Rule 3; raises SigningError."""
    spec = csr.get("spec") or {}
    try:
        request = base64.b64decode(str(spec.get("request", "")), validate=True)
    except ValueError:
        raise SigningError(INVALID_CSR, "spec.request is not base64") from None
    exp = spec.get("expirationSeconds")
    return sign_csr(request, ca_cert, ca_key, signer_name=str(spec.get("signerName")),
                    usages=spec.get("usages") or (), duration_seconds=exp if isinstance(exp, int) else None,
                    max_duration_seconds=max_duration_seconds)


class CSRSigningController(CSRController):
    name = "csrsigning"

    def __init__(self, ctx: ControllerContext, ca_cert: x509.Certificate, ca_key: PrivateKey) -> None:
        super().__init__(ctx)
        self.ca_cert, self.ca_key = ca_cert, ca_key
        self.max_duration = int(ctx.config.cluster_signing_duration)

    def wants(self, csr: Obj) -> bool:
        return should_sign(csr)

    async def reconcile(self, csr: Obj) -> None:
        name = csr["metadata"]["name"]
        signer = csr["spec"].get("signerName")
        try:
            cert_pem = sign(csr, self.ca_cert, self.ca_key, self.max_duration)
        except SigningError as exc:
            if exc.reason not in FINAL_FAILURES:
                raise
            await self.client.update("certificatesigningrequests", with_failure(csr, exc, format_time(self.clock())),
                                     group=CERTS, subresource="status")
            log.info("csr %s (%s) failed: %s: %s", name, signer, exc.reason, exc.message)
            return
        await self.client.update("certificatesigningrequests", with_certificate(csr, cert_pem), group=CERTS,
                                 subresource="status")
        subject = x509.load_pem_x509_certificate(cert_pem).subject.rfc4514_string()
        log.info("csr %s (%s) signed: subject %s", name, signer, subject)
