"""csrapproving: auto-approve kubelet client certificates (pkg/controller/certificates/approver).

The approver never decides on its own who may have a certificate: it asks the apiserver, with a
SubjectAccessReview for the CSR's *requester* (``spec.username/uid/groups/extra``, which the apiserver
recorded on create), whether that requester may ``create`` a made-up subresource of CSRs. RBAC
grants those subresources (kubeadm binds ``system:bootstrappers`` to ``...:nodeclient`` and
``system:nodes`` to ``...:selfnodeclient``). Rules, in order:

1. Skip a CSR that already has a certificate, or an Approved or Denied condition.
2. Only ``kubernetes.io/kube-apiserver-client-kubelet`` CSRs whose request is a valid kubelet client
   request (O=[system:nodes], CN=system:node:*, no SANs, usages {digital signature, client auth}
   +/- key encipherment; the signer's own check) are recognized. kubelet-serving and any other
   signer are never auto-approved: someone must ``kubectl certificate approve`` them.
3. If CN == requester (a node renewing its own certificate): try ``certificatesigningrequests/
   selfnodeclient`` first.
4. Then ``certificatesigningrequests/nodeclient`` (a bootstrap token creating a node's first cert).
5. The first allowed review appends ``{type: Approved, status: "True", reason: AutoApproved,
   message: ...}`` and PUTs the object to ``.../approval``. None allowed: the CSR stays Pending and is
   retried with back-off (RBAC may change), logged at debug level like the real "ignorable" error.

Wire example (what the controller POSTs for rule 4)::

    POST /apis/authorization.k8s.io/v1/subjectaccessreviews
    {"spec":{"user":"system:bootstrap:abcdef","groups":["system:bootstrappers",...],
             "resourceAttributes":{"group":"certificates.k8s.io","resource":"certificatesigningrequests",
                                   "subresource":"nodeclient","verb":"create","version":"*"}}}
"""

from __future__ import annotations

import base64
import binascii
import copy
import logging
from dataclasses import dataclass

from cryptography import x509

from miniapi.controllermanager.base import Client, Obj, condition, format_time
from miniapi.controllermanager.csrqueue import CERTS, CSRController
from miniapi.controllermanager.workqueue import Requeue
from pki.errors import SigningError
from pki.signer import KUBE_APISERVER_CLIENT_KUBELET, parse_csr, validate_csr

log = logging.getLogger("miniapi.controllermanager.csrapproving")

NODECLIENT_MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."
SELFNODECLIENT_MESSAGE = "Auto approving self kubelet client certificate after SubjectAccessReview."


@dataclass(frozen=True)
class Recognizer:
    """One way a CSR may be approved: the subresource a SubjectAccessReview asks about."""

    subresource: str
    message: str


SELFNODECLIENT = Recognizer("selfnodeclient", SELFNODECLIENT_MESSAGE)
NODECLIENT = Recognizer("nodeclient", NODECLIENT_MESSAGE)


def is_pending(csr: Obj) -> bool:
    """Rule 1: no certificate, not Approved, not Denied."""
    if (csr.get("status") or {}).get("certificate"):
        return False
    return condition(csr, "Approved") is None and condition(csr, "Denied") is None


def recognize(csr: Obj) -> tuple[Recognizer, ...]:
    """Rules 2-4: the reviews to try, in order; empty if the CSR is not an auto-approvable one."""
    spec = csr.get("spec") or {}
    if spec.get("signerName") != KUBE_APISERVER_CLIENT_KUBELET:
        return ()
    try:
        request = parse_csr(base64.b64decode(str(spec.get("request", "")), validate=True))
        validate_csr(KUBE_APISERVER_CLIENT_KUBELET, request, spec.get("usages") or ())
    except (SigningError, binascii.Error, ValueError):
        return ()
    if spec.get("username") == _common_name(request):
        return (SELFNODECLIENT, NODECLIENT)
    return (NODECLIENT,)


def _common_name(request: x509.CertificateSigningRequest) -> str:
    names = request.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[-1].value) if names else ""


def access_review(csr: Obj, subresource: str) -> Obj:
    """The SubjectAccessReview for the requester recorded in the CSR's spec."""
    spec = csr.get("spec") or {}
    review: Obj = {"user": spec.get("username", ""), "uid": spec.get("uid", ""),
                   "groups": list(spec.get("groups") or ()),
                   "resourceAttributes": {"group": CERTS, "resource": "certificatesigningrequests",
                                          "subresource": subresource, "verb": "create", "version": "*"}}
    if spec.get("extra"):
        review["extra"] = spec["extra"]
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": review}


def approved(csr: Obj, message: str, now: str) -> Obj:
    """Rule 5: a copy of the CSR with the AutoApproved condition appended."""
    out = copy.deepcopy(csr)
    out.setdefault("apiVersion", f"{CERTS}/v1")
    out.setdefault("kind", "CertificateSigningRequest")
    conditions = out.setdefault("status", {}).setdefault("conditions", [])
    conditions.append({"type": "Approved", "status": "True", "reason": "AutoApproved", "message": message,
                       "lastUpdateTime": now, "lastTransitionTime": now})
    return out


async def allowed(client: Client, csr: Obj, subresource: str) -> bool:
    result = await client.create("subjectaccessreviews", access_review(csr, subresource),
                                 group="authorization.k8s.io")
    return bool((result.get("status") or {}).get("allowed"))


class CSRApprovingController(CSRController):
    name = "csrapproving"

    def wants(self, csr: Obj) -> bool:
        return is_pending(csr)

    async def reconcile(self, csr: Obj) -> None:
        name = csr["metadata"]["name"]
        tried = []
        for recognizer in recognize(csr):
            tried.append(recognizer.subresource)
            if await allowed(self.client, csr, recognizer.subresource):
                await self.client.update("certificatesigningrequests",
                                         approved(csr, recognizer.message, format_time(self.clock())),
                                         group=CERTS, subresource="approval")
                log.info("csr %s approved: requester %s may create certificatesigningrequests/%s", name,
                         csr["spec"].get("username"), recognizer.subresource)
                return
        if tried:
            raise Requeue(f"recognized as {tried} but no SubjectAccessReview allowed "
                          f"{csr['spec'].get('username')!r}")
