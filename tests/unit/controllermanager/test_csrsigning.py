"""csrsigning: which CSRs get signed (table), what the certificate looks like, and the Failed path."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509

from miniapi.controllermanager.config import Config
from miniapi.controllermanager.csrsigning import CSRSigningController, should_sign
from pki.certinfo import chains_to, describe
from pki.certs import PrivateKey
from pki.signer import KUBE_APISERVER_CLIENT, KUBELET_SERVING
from tests.unit.controllermanager.conftest import Start
from tests.unit.controllermanager.csrs import Obj, csr
from tests.unit.controllermanager.fakes import FakeClient, make_ctx

CA = tuple[x509.Certificate, PrivateKey]
SERVING = {"signer": KUBELET_SERVING, "usages": ("digital signature", "server auth"), "dns": ("node1",)}


@pytest.mark.parametrize(("obj", "sign"), [
    (csr(conditions=("Approved",)), True),
    (csr(conditions=("Approved",), **SERVING), True),  # type: ignore[arg-type]
    (csr(conditions=("Approved",), signer=KUBE_APISERVER_CLIENT, cn="alice", orgs=()), True),
    (csr(), False),
    (csr(conditions=("Denied",)), False),
    (csr(conditions=("Approved", "Failed")), False),
    (csr(conditions=("Approved",), certificate="Y2VydA=="), False),
    (csr(conditions=("Approved",), signer="example.com/custom"), False),
    (csr(conditions=("Approved",), signer="kubernetes.io/legacy-unknown"), False),
], ids=["approved-client-kubelet", "approved-serving", "approved-apiserver-client", "pending", "denied",
        "failed", "issued", "foreign-signer", "legacy-unknown"])
def test_should_sign(obj: Obj, sign: bool) -> None:
    assert should_sign(obj) is sign


async def _sign(start: Start, ca: CA, obj: Obj, duration: float = 8760 * 3600) -> tuple[FakeClient, Obj]:
    fake = FakeClient()
    fake.put("certificatesigningrequests", obj)
    ctx = make_ctx(fake, Config(kubeconfig="x", cluster_signing_duration=duration))
    controller = CSRSigningController(ctx, *ca)
    await start(ctx)
    await controller.sync(obj["metadata"]["name"])
    writes = fake.writes()
    assert [(w.verb, w.subresource) for w in writes] == [("update", "status")]
    return fake, writes[0].body


def _cert(body: Obj) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(body["status"]["certificate"]))


async def test_signs_an_approved_kubelet_client_csr(start: Start, ca: CA) -> None:
    _, body = await _sign(start, ca, csr(conditions=("Approved",)))
    cert = _cert(body)
    info = describe(cert)
    assert chains_to(cert, ca[0])
    assert (info.common_name, info.organizations) == ("system:node:node1", ("system:nodes",))
    assert info.extended_usages == ("client auth",)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert dt.timedelta(days=364) < lifetime <= dt.timedelta(days=365)


@pytest.mark.parametrize(("expiration", "flag", "hours"), [
    (3600, 8760 * 3600, 1), (None, 2 * 3600, 2), (10 * 3600, 2 * 3600, 2)],
    ids=["requested-shorter", "flag-default", "flag-caps-request"])
async def test_duration_is_min_of_request_and_flag(start: Start, ca: CA, expiration: int | None, flag: float,
                                                   hours: int) -> None:
    _, body = await _sign(start, ca, csr(conditions=("Approved",), expiration=expiration), flag)
    cert = _cert(body)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == dt.timedelta(hours=hours, minutes=5)  # backdated 5 minutes, short-lived: not trimmed


async def test_refused_request_gets_a_failed_condition(start: Start, ca: CA) -> None:
    _, body = await _sign(start, ca, csr(conditions=("Approved",), orgs=("system:masters",)))
    assert "certificate" not in body["status"]
    failed = body["status"]["conditions"][-1]
    assert (failed["type"], failed["status"], failed["reason"], failed["message"]) == \
        ("Failed", "True", "SignerValidationFailure", "subject organization is not system:nodes")


async def test_running_controller_signs_after_approval(start: Start, ca: CA) -> None:
    fake = FakeClient()
    ctx = make_ctx(fake)
    await start(ctx, CSRSigningController(ctx, *ca))
    fake.put("certificatesigningrequests", csr(**SERVING))  # type: ignore[arg-type]
    approved = csr(conditions=("Approved",), **SERVING)  # type: ignore[arg-type]
    fake.put("certificatesigningrequests", approved)
    await fake.wait_for(lambda: bool((fake.obj("certificatesigningrequests", "node-csr-1") or {})
                                     .get("status", {}).get("certificate")))
    cert = _cert(fake.obj("certificatesigningrequests", "node-csr-1") or {})
    assert describe(cert).dns_names == ("node1",) and describe(cert).extended_usages == ("server auth",)
