"""Pod volumes on the node: the AtomicWriter, projected payloads, container mounts and the mount fallback."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from miniapi.registry.serviceaccount import token_volume_source
from minikubelet import atomicwriter, mounts
from minikubelet.atomicwriter import FileProjection, PayloadError
from minikubelet.env import ContainerConfigError
from minikubelet.token import TokenManager
from minikubelet.volumes import SERVICE_ACCOUNT_ENV, VolumeError, VolumeManager, container_mounts

Obj = dict[str, Any]
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
SA_VOLUME = {"name": "kube-api-access-x7k2p", "projected": token_volume_source()}
POD: Obj = {"metadata": {"name": "web", "namespace": "team", "uid": "uid-1", "labels": {"b": "2", "a": "x\"y"}},
            "spec": {"serviceAccountName": "builder", "nodeName": "node1", "volumes": [SA_VOLUME],
                     "containers": [{"name": "c1", "resources": {"limits": {"memory": "64Mi"}}}]}}


def test_atomic_writer_layout_and_modes(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    payload = {"token": FileProjection(b"t1", 0o644), "sub/ns": FileProjection(b"n", 0o600)}
    assert atomicwriter.write(str(target), payload)
    assert sorted(os.listdir(target))[-3:] == ["..data", "sub", "token"]
    assert os.readlink(target / "token") == "..data/token" and os.readlink(target / "sub") == "..data/sub"
    first = os.readlink(target / "..data")
    assert first.startswith("..") and stat.S_IMODE(os.stat(target / first).st_mode) == 0o755
    assert stat.S_IMODE(os.stat(target / "sub" / "ns").st_mode) == 0o600
    assert not atomicwriter.write(str(target), payload)  # unchanged: no write
    assert atomicwriter.write(str(target), {"token": FileProjection(b"t2", 0o644)})
    second = os.readlink(target / "..data")
    assert second != first and not (target / first).exists() and not os.path.lexists(target / "sub")
    assert (target / "token").read_bytes() == b"t2"


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "..data", ""],
                         ids=["absolute", "parent", "nested-parent", "dotdot-prefix", "empty"])
def test_atomic_writer_refuses_escaping_paths(tmp_path: Path, path: str) -> None:
    with pytest.raises(PayloadError):
        atomicwriter.write(str(tmp_path), {path: FileProjection(b"x", 0o644)})


class Tokens:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Obj]] = []

    async def __call__(self, namespace: str, sa: str, body: Obj) -> Obj:
        self.sent.append((namespace, sa, body))
        return {"spec": body["spec"], "status": {"token": "jwt", "expirationTimestamp": "2030-01-01T00:00:00Z"}}


def manager(objects: dict[tuple[str, str, str], Obj]) -> tuple[VolumeManager, Tokens]:
    async def fetch(resource: str, namespace: str, name: str) -> Obj | None:
        return objects.get((resource, namespace, name))

    api = Tokens()
    return VolumeManager(fetch, TokenManager(api), "127.0.1.1"), api


async def test_the_service_account_volume_holds_token_ca_and_namespace(tmp_path: Path) -> None:
    vm, api = manager({("configmaps", "team", "kube-root-ca.crt"): {"data": {"ca.crt": CA}}})
    paths = await vm.setup(POD, str(tmp_path), "10.244.1.2")
    vol = tmp_path / "volumes" / "kubernetes.io~projected" / "kube-api-access-x7k2p"
    assert paths == {"kube-api-access-x7k2p": str(vol)}
    assert {n: (vol / n).read_text() for n in ("token", "ca.crt", "namespace")} == \
        {"token": "jwt", "ca.crt": CA, "namespace": "team"}
    assert all(stat.S_IMODE(os.stat(vol / n).st_mode) == 0o644 for n in ("token", "ca.crt", "namespace"))
    assert api.sent == [("team", "builder", {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                             "spec": {"audiences": [], "expirationSeconds": 3607, "boundObjectRef": {
                                                 "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-1"}}})]
    vm.teardown(str(tmp_path), "uid-1")
    assert not (tmp_path / "volumes").exists() and len(vm.tokens) == 0


async def test_a_missing_root_ca_configmap_fails_the_mount_like_the_kubelet(tmp_path: Path) -> None:
    vm, _ = manager({})
    with pytest.raises(VolumeError) as err:
        await vm.setup(POD, str(tmp_path), "10.244.1.2")
    assert str(err.value) == ('MountVolume.SetUp failed for volume "kube-api-access-x7k2p" : '
                              'configmap "kube-root-ca.crt" not found')


async def test_other_projections_secret_items_labels_resources_and_audience(tmp_path: Path) -> None:
    secret = {"data": {"user": base64.b64encode(b"admin").decode(), "pw": base64.b64encode(b"hunter2").decode()}}
    pod: Obj = {**POD, "spec": {**POD["spec"], "volumes": [
        {"name": "all", "projected": {"defaultMode": 0o400, "sources": [
            {"secret": {"name": "db", "items": [{"key": "pw", "path": "db/password", "mode": 0o600}]}},
            {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                       {"path": "mem", "resourceFieldRef": {"containerName": "c1",
                                                                            "resource": "limits.memory"}}]}},
            {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault-token"}}]}},
        {"name": "cfg", "configMap": {"name": "missing", "optional": True}},
        {"name": "scratch", "emptyDir": {}}, {"name": "host", "hostPath": {"path": "/"}}]}}
    vm, api = manager({("secrets", "team", "db"): secret})
    paths = await vm.setup(pod, str(tmp_path), "10.244.1.2")
    assert sorted(paths) == ["all", "cfg", "scratch"]  # hostPath is not supported
    vol = Path(paths["all"])
    assert (vol / "db" / "password").read_text() == "hunter2"
    assert stat.S_IMODE(os.stat(vol / "db/password").st_mode) == 0o600
    assert (vol / "labels").read_text() == 'a="x\\"y"\nb="2"' and (vol / "mem").read_text() == "64Mi"
    assert stat.S_IMODE(os.stat(vol / "labels").st_mode) == 0o400
    assert api.sent[0][2]["spec"]["audiences"] == ["vault"] and api.sent[0][2]["spec"]["expirationSeconds"] == 600
    assert [n for n in os.listdir(paths["cfg"]) if not n.startswith("..")] == []  # optional and missing: empty


def test_container_mounts_read_only_sub_path_and_fallback_names() -> None:
    pod: Obj = {"spec": {"volumes": [SA_VOLUME, {"name": "scratch-space", "emptyDir": {}}]}}
    container = {"volumeMounts": [
        {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
         "readOnly": True},
        {"name": "scratch-space", "mountPath": "/scratch", "subPath": "a/b"},
        {"name": "unknown", "mountPath": "/nope"}]}
    paths = {"kube-api-access-x7k2p": "/v/sa", "scratch-space": "/v/s"}
    assert container_mounts(pod, container, paths) == [
        {"source": "/v/sa", "target": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True,
         "fallbackEnv": SERVICE_ACCOUNT_ENV},
        {"source": "/v/s/a/b", "target": "/scratch", "readOnly": False,
         "fallbackEnv": "MINIKUBELET_VOLUME_SCRATCH_SPACE"}]
    with pytest.raises(ContainerConfigError, match="subPath"):
        container_mounts(pod, {"volumeMounts": [{"name": "scratch-space", "mountPath": "/x", "subPath": "../.."}]},
                         paths)


def test_without_root_the_mounts_fall_back_to_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    env: dict[str, str] = {}
    warnings = mounts.apply([{"source": "/v/sa", "target": "/var/run/secrets/kubernetes.io/serviceaccount",
                              "readOnly": True, "fallbackEnv": SERVICE_ACCOUNT_ENV}], env)
    assert env == {SERVICE_ACCOUNT_ENV: "/v/sa"}
    assert len(warnings) == 1 and "no mount namespace" in warnings[0] and f"${SERVICE_ACCOUNT_ENV}" in warnings[0]
    assert mounts.apply([], env) == []
