"""serviceaccount and root-ca-cert-publisher: per-namespace objects, created and restored."""

from __future__ import annotations

import pytest

from miniapi.controllermanager.rootcacertpublisher import (
    CONFIGMAP,
    DESCRIPTION,
    DESCRIPTION_ANNOTATION,
    RootCACertPublisher,
    desired,
    repaired,
)
from miniapi.controllermanager.serviceaccount import ServiceAccountsController, is_active, missing
from tests.unit.controllermanager.conftest import Start
from tests.unit.controllermanager.fakes import FakeClient, Obj, make_ctx

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def ns(name: str, phase: str = "Active", deleting: bool = False) -> Obj:
    meta: Obj = {"name": name}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase}}


@pytest.mark.parametrize(("obj", "active"), [
    (ns("a"), True), (ns("a", "Terminating"), False), (ns("a", deleting=True), False), (None, False)],
    ids=["active", "terminating", "deleting", "gone"])
def test_is_active(obj: Obj | None, active: bool) -> None:
    assert is_active(obj) is active


def test_missing_service_accounts() -> None:
    assert missing("team", {"team/builder", "other/default"}) == ["default"]
    assert missing("team", {"team/default"}) == []


@pytest.mark.parametrize(("cm", "fixed_data"), [
    (desired("a", CA), None),
    ({**desired("a", CA), "data": {"ca.crt": "tampered"}}, {"ca.crt": CA}),
    ({**desired("a", CA), "data": {"ca.crt": CA, "extra": "x"}}, {"ca.crt": CA}),
    ({"metadata": {"name": CONFIGMAP, "namespace": "a"}, "data": {"ca.crt": CA}}, {"ca.crt": CA}),
], ids=["correct", "edited-ca", "extra-key", "annotation-missing"])
def test_repaired(cm: Obj, fixed_data: dict[str, str] | None) -> None:
    out = repaired(cm, CA)
    if fixed_data is None:
        assert out is None
        return
    assert out is not None and out["data"] == fixed_data
    assert out["metadata"]["annotations"][DESCRIPTION_ANNOTATION] == DESCRIPTION


def test_repair_keeps_other_annotations() -> None:
    cm = {"metadata": {"name": CONFIGMAP, "annotations": {"team": "x"}}, "data": {}}
    assert (repaired(cm, CA) or {})["metadata"]["annotations"] == {"team": "x", DESCRIPTION_ANNOTATION: DESCRIPTION}


async def test_service_account_created_and_recreated(start: Start, fake: FakeClient) -> None:
    fake.put("namespaces", ns("team"))
    fake.put("namespaces", ns("going", "Terminating"))
    ctx = make_ctx(fake)
    await start(ctx, ServiceAccountsController(ctx))
    await fake.wait_for(lambda: fake.obj("serviceaccounts", "default", "team") is not None)
    fake.remove("serviceaccounts", "team", "default")
    await fake.wait_for(lambda: len(fake.writes("create")) == 2)
    assert [(c.namespace, c.name) for c in fake.writes()] == [("team", "default")] * 2


async def test_root_ca_created_restored_after_edit_and_delete(start: Start, fake: FakeClient) -> None:
    fake.put("namespaces", ns("team"))
    ctx = make_ctx(fake)
    await start(ctx, RootCACertPublisher(ctx, CA))
    await fake.wait_for(lambda: fake.obj("configmaps", CONFIGMAP, "team") is not None)
    created = fake.obj("configmaps", CONFIGMAP, "team") or {}
    assert created["data"] == {"ca.crt": CA}
    fake.put("configmaps", {**created, "data": {"ca.crt": "tampered"}})
    await fake.wait_for(lambda: (fake.obj("configmaps", CONFIGMAP, "team") or {}).get("data") == {"ca.crt": CA})
    fake.remove("configmaps", "team", CONFIGMAP)
    await fake.wait_for(lambda: fake.obj("configmaps", CONFIGMAP, "team") is not None)
    assert [c.verb for c in fake.writes()] == ["create", "update", "create"]
