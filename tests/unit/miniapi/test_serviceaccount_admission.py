"""The ServiceAccount admission plugin's token volume: exact shape, opt-outs, existing mounts; and the
lifetime a TokenRequest gets (max expiration, the one-year extension of kubelet-style requests)."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from miniapi.registry.serviceaccount import (
    MOUNT_PATH,
    Lifetime,
    mount_service_account_token,
    random_suffix,
    token_lifetime,
)

Obj = dict[str, Any]
ISSUER = "https://kubernetes.default.svc.cluster.local"
VOLUME = {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
    {"downwardAPI": {"items": [{"path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}
MOUNT = {"name": "kube-api-access-x7k2p", "readOnly": True,
         "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}


def pod(**spec: Any) -> Obj:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "spec": {"containers": [{"name": "a", "image": "busybox"}], **spec}}


def admit(p: Obj, sa: Obj | None = None) -> Obj:
    out = copy.deepcopy(p)
    mount_service_account_token(out, sa if sa is not None else {"metadata": {"name": "default"}}, lambda: "x7k2p")
    return out


def test_exact_shape_for_every_container_and_init_container() -> None:
    out = admit(pod(initContainers=[{"name": "i", "image": "busybox"}],
                    containers=[{"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]},
                                {"name": "b", "image": "y"}],
                    volumes=[{"name": "data", "emptyDir": {}}]))
    spec = out["spec"]
    assert spec["volumes"] == [{"name": "data", "emptyDir": {}}, VOLUME]
    assert spec["initContainers"][0]["volumeMounts"] == [MOUNT]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/d"}, MOUNT]
    assert spec["containers"][1]["volumeMounts"] == [MOUNT]


@pytest.mark.parametrize(("pod_flag", "sa_flag", "mounted"), [
    (None, None, True), (False, None, False), (None, False, False), (True, False, True), (False, True, False),
    (None, True, True),
], ids=["default", "pod-off", "sa-off", "pod-on-beats-sa-off", "pod-off-beats-sa-on", "sa-on"])
def test_automount_service_account_token(pod_flag: bool | None, sa_flag: bool | None, mounted: bool) -> None:
    p = pod() if pod_flag is None else pod(automountServiceAccountToken=pod_flag)
    sa: Obj = {"metadata": {"name": "default"}}
    if sa_flag is not None:
        sa["automountServiceAccountToken"] = sa_flag
    out = admit(p, sa)
    assert ("volumes" in out["spec"]) is mounted
    assert ("volumeMounts" in out["spec"]["containers"][0]) is mounted


def test_a_container_mounting_something_else_at_the_path_keeps_it() -> None:
    own = {"name": "mine", "mountPath": MOUNT_PATH}
    out = admit(pod(containers=[{"name": "a", "image": "x", "volumeMounts": [own]}], volumes=[{"name": "mine"}]))
    assert out["spec"]["containers"][0]["volumeMounts"] == [own]
    assert out["spec"]["volumes"] == [{"name": "mine"}]  # no container needed it: no volume


def test_an_existing_kube_api_access_volume_is_reused() -> None:
    mine = {"name": "kube-api-access-mine1", "emptyDir": {}}
    out = admit(pod(volumes=[mine]))
    assert out["spec"]["volumes"] == [mine]
    assert out["spec"]["containers"][0]["volumeMounts"] == [dict(MOUNT, name="kube-api-access-mine1")]


def test_random_suffix_uses_the_kubernetes_alphabet() -> None:
    assert all(re.fullmatch(r"[bcdfghjklmnpqrstvwxz2456789]{5}", random_suffix()) for _ in range(50))


@pytest.mark.parametrize(("requested", "cap", "extend", "pod", "audiences", "expected"), [
    (3607, 0, True, True, [ISSUER], Lifetime(3607, 365 * 86400, 3607)),
    (3607, 0, False, True, [ISSUER], Lifetime(3607, 3607)),
    (3607, 0, True, False, [ISSUER], Lifetime(3607, 3607)),
    (3600, 0, True, True, [ISSUER], Lifetime(3600, 3600)),
    (3607, 0, True, True, ["vault"], Lifetime(3607, 3607)),
    (3607, 0, True, True, [], Lifetime(3607, 365 * 86400, 3607)),
    (7200, 3600, True, True, [ISSUER], Lifetime(3600, 3600, 0, "requested expiration of 7200 seconds shortened to "
                                                             "3600 seconds")),
    (3607, 3600, True, True, [ISSUER], Lifetime(3600, 3600, 0, "requested expiration of 3607 seconds shortened to "
                                                             "3600 seconds")),
    (3607, 7200, True, True, [ISSUER], Lifetime(3607, 365 * 86400, 3607)),
], ids=["kubelet-request", "extension-off", "not-pod-bound", "not-3607", "foreign-audience", "default-audience",
        "capped", "capped-below-3607-no-extension", "cap-does-not-limit-the-extension"])
def test_token_lifetime(requested: int, cap: int, extend: bool, pod: bool, audiences: list[str],
                        expected: Lifetime) -> None:
    assert token_lifetime(requested, cap, extend, pod, audiences, [ISSUER]) == expected
