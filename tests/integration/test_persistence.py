"""``--data-dir``: the SQLite store survives a restart like etcd does (objects, uids, resourceVersions,
the revision counter), while the watch history does not (a fresh watch cache): an old watch gets 410."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.conftest import Pki, running

NS = "persist"


async def test_objects_survive_a_restart(pki: Pki, tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    async with running(pki.config(data_dir=data_dir), pki) as (_, http):
        assert (await http.call("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})).status == 201
        assert (await http.call("POST", f"/api/v1/namespaces/{NS}/serviceaccounts",
                                {"metadata": {"name": "default"}})).status == 201
        cm = await http.call("POST", f"/api/v1/namespaces/{NS}/configmaps",
                             {"metadata": {"name": "cm", "labels": {"a": "b"}}, "data": {"k": "v"}})
        secret = await http.call("POST", f"/api/v1/namespaces/{NS}/secrets",
                                 {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
        role = await http.call("POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles", {
            "metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
        assert (cm.status, secret.status, role.status) == (201, 201, 201)
        gone = await http.call("POST", f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "gone"}})
        assert (await http.call("DELETE", f"/api/v1/namespaces/{NS}/configmaps/gone")).status == 200
        before = {path: await http.get_json(path) for path in (
            f"/api/v1/namespaces/{NS}", f"/api/v1/namespaces/{NS}/configmaps/cm",
            f"/api/v1/namespaces/{NS}/secrets/s", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}/roles/r",
            f"/api/v1/namespaces/{NS}/serviceaccounts/default")}
        last_rv = int((await http.get_json(f"/api/v1/namespaces/{NS}/configmaps"))["metadata"]
                      ["resourceVersion"])
        assert int(json.loads(gone.body)["metadata"]["resourceVersion"]) < last_rv

    async with running(pki.config(data_dir=data_dir), pki) as (_, http):
        for path, obj in before.items():
            assert await http.get_json(path) == obj, path  # same uid, same resourceVersion, same content
        assert (await http.call("GET", f"/api/v1/namespaces/{NS}/configmaps/gone")).status == 404
        listed = await http.get_json(f"/api/v1/namespaces/{NS}/configmaps")
        assert int(listed["metadata"]["resourceVersion"]) >= last_rv
        new = await http.call("POST", f"/api/v1/namespaces/{NS}/configmaps", {"metadata": {"name": "new"}})
        assert new.status == 201
        assert int(new.json["metadata"]["resourceVersion"]) > last_rv
        patched = await http.call("PATCH", f"/api/v1/namespaces/{NS}/configmaps/cm", {"data": {"k": "w"}},
                                  content_type="application/merge-patch+json")
        assert patched.status == 200
        assert int(patched.json["metadata"]["resourceVersion"]) > int(new.json["metadata"]["resourceVersion"])
        assert patched.json["metadata"]["uid"] == before[f"/api/v1/namespaces/{NS}/configmaps/cm"]["metadata"][
            "uid"]

        # the watch history did not survive: resuming from a pre-restart revision is 410 Gone
        old = await http.call("GET", f"/api/v1/namespaces/{NS}/configmaps?watch=true&resourceVersion=2"
                                     "&timeoutSeconds=5")
        events = [json.loads(line) for line in old.body.splitlines()]
        assert [e["type"] for e in events] == ["ERROR"]
        assert (events[0]["object"]["kind"], events[0]["object"]["code"]) == ("Status", 410)


async def test_bootstrap_is_idempotent_across_restarts(pki: Pki, tmp_path: Path) -> None:
    """A second start finds the default namespaces and policy already there and keeps them as they are."""
    data_dir = str(tmp_path / "data")
    async with running(pki.config(data_dir=data_dir), pki) as (_, http):
        first = await http.get_json("/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin")
        default = await http.get_json("/api/v1/namespaces/default")
    async with running(pki.config(data_dir=data_dir), pki) as (_, http):
        assert await http.get_json("/apis/rbac.authorization.k8s.io/v1/clusterroles/cluster-admin") == first
        assert await http.get_json("/api/v1/namespaces/default") == default
