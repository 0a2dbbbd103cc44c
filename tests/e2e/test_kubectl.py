"""The real kubectl v1.37 against a real ``python -m miniapi`` process: reads, writes and bad input.

Covers PROTOCOLS.md section 1 as kubectl shows it: server-side tables (``get nodes``, ``-A``,
``-o wide``), ``-o yaml``, ``get -w``, label and field selectors, ``create -f`` / ``apply`` /
``patch`` / ``label`` / ``annotate`` / ``delete``, and the exact error text kubectl prints for the
Status objects a real cluster returns (AlreadyExists, NotFound, Invalid, BadRequest).

Most tests run twice, with the client-certificate kubeconfig (``admin.conf``) and with a bearer
token kubeconfig; each test works in its own namespace so the two runs never see each other.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import queue
import re
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.cluster import Cluster, Kubectl

pytestmark = pytest.mark.e2e

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")


@pytest.fixture(params=["admin", "admin_token"], ids=["client-cert", "bearer-token"])
def kc(request: pytest.FixtureRequest) -> Kubectl:
    """kubectl as a system:masters user, once per credential kind."""
    return request.getfixturevalue(request.param)


@pytest.fixture
def ns(request: pytest.FixtureRequest, admin: Kubectl) -> str:
    """A fresh namespace named after the test, e.g. ``get-pods-wide-client-cert``."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_")).strip("-")[:63]
    admin.ok("create", "namespace", name)
    return name


def write(tmp_path: Path, name: str, *docs: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(docs))
    return path


def pod(name: str, labels: dict[str, str] | None = None, images: tuple[str, ...] = ("nginx",)) -> dict[str, Any]:
    containers = [{"name": f"c{i}", "image": image} for i, image in enumerate(images)]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": containers}}


def node(name: str, ready: str = "True", unschedulable: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"node-role.kubernetes.io/worker": "",
                                              "kubernetes.io/hostname": name}},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "192.168.50.7"}, {"type": "Hostname", "address": name}],
            "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                            "message": "kubelet is posting ready status"}],
            "nodeInfo": {"kubeletVersion": "v1.37.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                         "kernelVersion": "6.1.0-28-amd64", "containerRuntimeVersion": "containerd://2.0.0",
                         "architecture": "amd64", "operatingSystem": "linux", "bootID": "b", "machineID": "m",
                         "systemUUID": "s", "kubeProxyVersion": ""},
        },
    }


def rows(table: str) -> dict[str, list[str]]:
    """A kubectl table as {first cell: all cells}; the header row is keyed by its first column."""
    return {cells[0]: cells for cells in (line.split() for line in table.splitlines()) if cells}


def header(table: str) -> str:
    return " ".join(table.splitlines()[0].split())


def names(output: str) -> set[str]:
    return set(output.split())


# -- get -----------------------------------------------------------------------------------------


def test_get_nodes_shows_status_roles_and_version(kc: Kubectl, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    name = f"worker-{request.node.callspec.id}"
    assert kc.ok("create", "-f", str(write(tmp_path, "node.yaml", node(name)))) == f"node/{name} created\n"

    table = kc.ok("get", "nodes")
    assert header(table) == "NAME STATUS ROLES AGE VERSION"
    cells = rows(table)[name]
    assert cells[:3] == [name, "Ready", "worker"] and cells[4] == "v1.37.0"
    assert re.fullmatch(r"\d+s", cells[3]), cells

    wide = kc.ok("get", "node", name, "-o", "wide")
    assert header(wide) == ("NAME STATUS ROLES AGE VERSION INTERNAL-IP EXTERNAL-IP OS-IMAGE KERNEL-VERSION "
                            "CONTAINER-RUNTIME")
    line = wide.splitlines()[1]
    for value in ("192.168.50.7", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0-28-amd64",
                  "containerd://2.0.0"):
        assert value in line


@pytest.mark.parametrize(("ready", "unschedulable", "status"), [
    ("True", False, "Ready"),
    ("False", False, "NotReady"),
    ("Unknown", False, "NotReady"),
    ("True", True, "Ready,SchedulingDisabled"),
], ids=["ready", "not-ready", "unknown", "cordoned"])
def test_node_status_column(admin: Kubectl, tmp_path: Path, ready: str, unschedulable: bool, status: str) -> None:
    name = f"status-{ready.lower()}-{int(unschedulable)}"
    admin.ok("create", "-f", str(write(tmp_path, "node.yaml", node(name, ready, unschedulable))))
    assert rows(admin.ok("get", "node", name))[name][1] == status


def test_get_pods_all_namespaces(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "pod.yaml", pod("web"))))
    table = kc.ok("get", "pods", "-A")
    assert header(table) == "NAMESPACE NAME READY STATUS RESTARTS AGE"
    ours = [line.split() for line in table.splitlines() if line.startswith(ns + " ")]
    assert [cells[:5] for cells in ours] == [[ns, "web", "0/1", "Pending", "0"]]


def test_get_pods_wide(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "pod.yaml", pod("web", images=("nginx", "redis")))))
    table = kc.ok("get", "pods", "-n", ns, "-o", "wide")
    assert header(table) == "NAME READY STATUS RESTARTS AGE IP NODE NOMINATED NODE READINESS GATES"
    cells = rows(table)["web"]
    assert cells[:4] == ["web", "0/2", "Pending", "0"]
    assert cells[5:] == ["<none>"] * 4


def test_get_pod_yaml_and_json(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "pod.yaml", pod("web", {"app": "web"}))))
    obj = yaml.safe_load(kc.ok("get", "pod", "web", "-n", ns, "-o", "yaml"))
    assert (obj["apiVersion"], obj["kind"]) == ("v1", "Pod")
    meta = obj["metadata"]
    assert (meta["name"], meta["namespace"], meta["labels"]) == ("web", ns, {"app": "web"})
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"]) and int(meta["resourceVersion"]) > 0
    assert obj["spec"]["containers"][0]["image"] == "nginx"
    assert obj["spec"]["serviceAccountName"] == "default"  # ServiceAccount admission defaulted it
    assert obj["status"]["phase"] == "Pending"
    assert kc.json("get", "pod", "web", "-n", ns)["metadata"]["uid"] == meta["uid"]


def test_get_empty_namespace(kc: Kubectl, ns: str) -> None:
    proc = kc.run("get", "pods", "-n", ns)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", f"No resources found in {ns} namespace.\n")


def test_get_cluster_scoped_nothing_matches(kc: Kubectl) -> None:
    proc = kc.run("get", "nodes", "-l", "no-such-label=here")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "No resources found\n")


def test_get_missing_object(kc: Kubectl, ns: str) -> None:
    proc = kc.run("get", "pod", "ghost", "-n", ns)
    assert proc.returncode == 1
    assert proc.stderr == 'Error from server (NotFound): pods "ghost" not found\n'


class _Lines:
    """A child's stdout, line by line, with a deadline: a reader thread feeds a queue (no sleeps)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.queue = proc, queue.Queue[str]()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.queue.put(line)
        self.queue.put("")

    def next(self, timeout: float = 10) -> str:
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output from kubectl within {timeout}s") from None
        if not line:
            raise AssertionError(f"kubectl exited {self.proc.wait()}: {self.proc.stderr and self.proc.stderr.read()}")
        return line


def _watch(kubectl: Kubectl, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [kubectl.binary, "--kubeconfig", str(kubectl.kubeconfig), "--cache-dir", str(kubectl.cache_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        env={**os.environ, "HOME": str(kubectl.cache_dir)})


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_get_watch_prints_new_pod(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "first.yaml", pod("first"))))
    proc = _watch(kc, "get", "pods", "-n", ns, "-w")
    try:
        lines = _Lines(proc)
        assert lines.next().split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert lines.next().split()[:4] == ["first", "0/1", "Pending", "0"]
        kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "second.yaml", pod("second"))))
        assert lines.next().split()[:4] == ["second", "0/1", "Pending", "0"]
    finally:
        _stop(proc)


def test_get_watch_event_types(admin: Kubectl, ns: str, tmp_path: Path) -> None:
    proc = _watch(admin, "get", "pods", "-n", ns, "-w", "--output-watch-events")
    try:
        lines = _Lines(proc)
        admin.ok("create", "-n", ns, "-f", str(write(tmp_path, "pod.yaml", pod("web"))))
        assert lines.next().split()[0] == "EVENT"
        assert lines.next().split()[:2] == ["ADDED", "web"]
        admin.ok("label", "pod", "web", "-n", ns, "seen=yes")
        assert lines.next().split()[:2] == ["MODIFIED", "web"]
        admin.ok("delete", "pod", "web", "-n", ns)
        assert lines.next().split()[:2] == ["DELETED", "web"]
    finally:
        _stop(proc)


@pytest.mark.parametrize(("args", "expected"), [
    (["-l", "app=web"], {"pod/a", "pod/b"}),
    (["-l", "app=web,tier!=be"], {"pod/a"}),
    (["-l", "app in (db,cache)"], {"pod/c"}),
    (["-l", "!tier"], {"pod/c"}),
    (["-l", "tier"], {"pod/a", "pod/b"}),
    (["--field-selector", "metadata.name=b"], {"pod/b"}),
    (["--field-selector", "metadata.name!=b"], {"pod/a", "pod/c"}),
    (["--field-selector", "status.phase=Pending"], {"pod/a", "pod/b", "pod/c"}),
    (["-l", "app=web", "--field-selector", "metadata.name=a"], {"pod/a"}),
], ids=["equals", "and-not-equals", "set-in", "not-exists", "exists", "field-name", "field-name-not",
        "field-phase", "label-and-field"])
def test_selectors(admin: Kubectl, ns: str, tmp_path: Path, args: list[str], expected: set[str]) -> None:
    manifest = write(tmp_path, "pods.yaml", pod("a", {"app": "web", "tier": "fe"}),
                     pod("b", {"app": "web", "tier": "be"}), pod("c", {"app": "db"}))
    admin.ok("create", "-n", ns, "-f", str(manifest))
    assert names(admin.ok("get", "pods", "-n", ns, "-o", "name", *args)) == expected


def test_selector_in_table_output(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "pods.yaml", pod("one", {"k": "1"}), pod("two", {"k": "2"}))))
    assert set(rows(kc.ok("get", "pods", "-n", ns, "-l", "k=2"))) == {"NAME", "two"}
    assert set(rows(kc.ok("get", "pods", "-n", ns, "--field-selector", "metadata.name=one"))) == {"NAME", "one"}


def test_unsupported_field_selector(admin: Kubectl, ns: str) -> None:
    proc = admin.run("get", "pods", "-n", ns, "--field-selector", "spec.foo=bar")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error from server (BadRequest): ")
    assert proc.stderr.endswith("field label not supported: spec.foo\n")


# -- create / apply / delete ---------------------------------------------------------------------


def test_create_pod(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    assert kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "p.yaml", pod("p")))) == "pod/p created\n"
    assert kc.json("get", "pod", "p", "-n", ns)["spec"]["containers"][0]["name"] == "c0"


def test_create_configmap_from_file(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
          "data": {"color": "blue", "size": "3"}}
    assert kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "cm.yaml", cm))) == "configmap/settings created\n"
    assert kc.ok("get", "cm", "settings", "-n", ns, "-o", "jsonpath={.data.color}/{.data.size}") == "blue/3"
    assert rows(kc.ok("get", "cm", "-n", ns))["settings"][1] == "2"  # DATA column


def test_create_service_gets_cluster_ip(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    assert kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "svc.yaml", svc))) == "service/web created\n"
    got = kc.json("get", "svc", "web", "-n", ns)["spec"]
    assert got["type"] == "ClusterIP"
    ip = ipaddress.ip_address(got["clusterIP"])
    assert ip in SERVICE_CIDR and ip != SERVICE_CIDR[1]  # .1 belongs to default/kubernetes
    assert got["clusterIPs"] == [got["clusterIP"]]
    assert got["ports"][0]["protocol"] == "TCP"
    cells = rows(kc.ok("get", "svc", "web", "-n", ns))["web"]
    assert cells[:5] == ["web", "ClusterIP", got["clusterIP"], "<none>", "80/TCP"]


def test_default_kubernetes_service(kc: Kubectl) -> None:
    """The apiserver publishes itself as default/kubernetes on the first address of the range."""
    cells = rows(kc.ok("get", "svc", "kubernetes", "-n", "default"))["kubernetes"]
    assert cells[:5] == ["kubernetes", "ClusterIP", str(SERVICE_CIDR[1]), "<none>", "443/TCP"]
    assert kc.ok("get", "svc", "kubernetes", "-n", "default", "-o",
                 "jsonpath={.metadata.labels.component}/{.spec.ports[0].name}") == "apiserver/https"


def test_service_cluster_ips_are_unique(admin: Kubectl, ns: str, tmp_path: Path) -> None:
    svcs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
             "spec": {"ports": [{"port": 80}]}} for i in range(3)]
    admin.ok("create", "-n", ns, "-f", str(write(tmp_path, "svcs.yaml", *svcs)))
    ips = admin.ok("get", "svc", "-n", ns, "-o", "jsonpath={.items[*].spec.clusterIP}").split()
    assert len(ips) == len(set(ips)) == 3


def test_create_secret_from_file(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"password": "hunter2"}, "data": {"user": base64.b64encode(b"root").decode()}}
    assert kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "s.yaml", secret))) == "secret/creds created\n"
    got = kc.json("get", "secret", "creds", "-n", ns)
    assert "stringData" not in got and got["type"] == "Opaque"
    assert {k: base64.b64decode(v) for k, v in got["data"].items()} == {"password": b"hunter2", "user": b"root"}


def test_create_existing_object_is_already_exists(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    path = write(tmp_path, "p.yaml", pod("p"))
    kc.ok("create", "-n", ns, "-f", str(path))
    proc = kc.run("create", "-n", ns, "-f", str(path))
    assert proc.returncode == 1
    assert proc.stderr == f'Error from server (AlreadyExists): error when creating "{path}": pods "p" already exists\n'


def test_apply_created_unchanged_configured(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": ns},
          "data": {"color": "blue"}}
    path = write(tmp_path, "cm.yaml", cm)
    assert kc.ok("apply", "-f", str(path)) == "configmap/app created\n"
    rv = kc.json("get", "cm", "app", "-n", ns)["metadata"]["resourceVersion"]
    assert kc.ok("apply", "-f", str(path)) == "configmap/app unchanged\n"
    assert kc.json("get", "cm", "app", "-n", ns)["metadata"]["resourceVersion"] == rv

    cm["data"] = {"color": "red", "shape": "round"}
    assert kc.ok("apply", "-f", str(write(tmp_path, "cm.yaml", cm))) == "configmap/app configured\n"
    got = kc.json("get", "cm", "app", "-n", ns)
    assert got["data"] == {"color": "red", "shape": "round"}
    assert int(got["metadata"]["resourceVersion"]) > int(rv)
    applied = got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert '"shape":"round"' in applied


def test_apply_removes_field_dropped_from_manifest(admin: Kubectl, ns: str, tmp_path: Path) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "app", "namespace": ns},
          "data": {"keep": "1", "drop": "2"}}
    admin.ok("apply", "-f", str(write(tmp_path, "cm.yaml", cm)))
    del cm["data"]["drop"]
    assert admin.ok("apply", "-f", str(write(tmp_path, "cm.yaml", cm))) == "configmap/app configured\n"
    assert admin.json("get", "cm", "app", "-n", ns)["data"] == {"keep": "1"}


@pytest.mark.parametrize(("kind", "resource", "manifest"), [
    ("pod", "pods", pod("victim")),
    ("configmap", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "victim"}}),
    ("service", "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "victim"},
                             "spec": {"ports": [{"port": 80}]}}),
], ids=["pod", "configmap", "service"])
def test_delete(kc: Kubectl, ns: str, tmp_path: Path, kind: str, resource: str, manifest: dict[str, Any]) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "x.yaml", manifest)))
    proc = kc.run("delete", kind, "victim", "-n", ns, timeout=20)
    assert (proc.returncode, proc.stdout) == (0, f'{kind} "victim" deleted from {ns} namespace\n'), proc.stderr
    gone = kc.run("get", kind, "victim", "-n", ns)
    assert gone.stderr == f'Error from server (NotFound): {resource} "victim" not found\n'


def test_delete_cluster_scoped(admin: Kubectl, tmp_path: Path) -> None:
    admin.ok("create", "-f", str(write(tmp_path, "node.yaml", node("doomed"))))
    assert admin.run("delete", "node", "doomed", timeout=20).stdout == 'node "doomed" deleted\n'


def test_delete_missing_object(kc: Kubectl, ns: str) -> None:
    proc = kc.run("delete", "pod", "ghost", "-n", ns, timeout=20)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == 'Error from server (NotFound): pods "ghost" not found\n'
    assert kc.run("delete", "pod", "ghost", "-n", ns, "--ignore-not-found").returncode == 0


def test_delete_by_label(admin: Kubectl, ns: str, tmp_path: Path) -> None:
    admin.ok("create", "-n", ns, "-f", str(write(tmp_path, "p.yaml", pod("a", {"gone": "yes"}),
                                                 pod("b", {"gone": "yes"}), pod("c"))))
    out = admin.run("delete", "pods", "-n", ns, "-l", "gone=yes", timeout=20).stdout
    assert set(out.splitlines()) == {f'pod "a" deleted from {ns} namespace', f'pod "b" deleted from {ns} namespace'}
    assert names(admin.ok("get", "pods", "-n", ns, "-o", "name")) == {"pod/c"}


# -- patch / label / annotate --------------------------------------------------------------------


@pytest.mark.parametrize(("patch_type", "patch", "jsonpath", "expected"), [
    ("merge", '{"metadata":{"labels":{"tier":"fe"}}}', "{.metadata.labels.tier}", "fe"),
    ("merge", '{"metadata":{"labels":{"app":null}}}', "{.metadata.labels}", ""),
    ("json", '[{"op":"replace","path":"/spec/containers/1/image","value":"redis:8"}]',
     "{.spec.containers[*].image}", "nginx redis:8"),
    ("json", '[{"op":"add","path":"/metadata/annotations","value":{"note":"hi"}}]',
     "{.metadata.annotations.note}", "hi"),
    ("strategic", '{"spec":{"containers":[{"name":"c0","image":"nginx:2"}]}}',
     "{.spec.containers[*].image}", "nginx:2 redis"),
    ("strategic", '{"spec":{"activeDeadlineSeconds":30}}', "{.spec.activeDeadlineSeconds}", "30"),
], ids=["merge-add-label", "merge-null-deletes", "json-replace", "json-add", "strategic-list-by-name",
        "strategic-scalar"])
def test_patch(kc: Kubectl, ns: str, tmp_path: Path, patch_type: str, patch: str, jsonpath: str,
               expected: str) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "p.yaml", pod("p", {"app": "web"}, ("nginx", "redis")))))
    assert kc.ok("patch", "pod", "p", "-n", ns, "--type", patch_type, "-p", patch) == "pod/p patched\n"
    assert kc.ok("get", "pod", "p", "-n", ns, "-o", f"jsonpath={jsonpath}") == expected


def test_patch_that_changes_nothing(admin: Kubectl, ns: str, tmp_path: Path) -> None:
    admin.ok("create", "-n", ns, "-f", str(write(tmp_path, "p.yaml", pod("p", {"app": "web"}))))
    rv = admin.json("get", "pod", "p", "-n", ns)["metadata"]["resourceVersion"]
    out = admin.ok("patch", "pod", "p", "-n", ns, "--type", "merge", "-p", '{"metadata":{"labels":{"app":"web"}}}')
    assert out == "pod/p patched (no change)\n"
    assert admin.json("get", "pod", "p", "-n", ns)["metadata"]["resourceVersion"] == rv


def test_merge_patch_replacing_containers_is_invalid(admin: Kubectl, ns: str, tmp_path: Path) -> None:
    admin.ok("create", "-n", ns, "-f", str(write(tmp_path, "p.yaml", pod("p", images=("nginx", "redis")))))
    proc = admin.run("patch", "pod", "p", "-n", ns, "--type", "merge",
                     "-p", '{"spec":{"containers":[{"name":"c0","image":"nginx:2"}]}}')
    assert proc.returncode == 1
    assert proc.stderr.startswith('The Pod "p" is invalid: spec: Forbidden: pod updates may not change fields '
                                  "other than `spec.containers[*].image`")


def test_patch_missing_object(kc: Kubectl, ns: str) -> None:
    proc = kc.run("patch", "pod", "ghost", "-n", ns, "-p", '{"metadata":{"labels":{"a":"b"}}}')
    assert (proc.returncode, proc.stderr) == (1, 'Error from server (NotFound): pods "ghost" not found\n')


def test_label_and_annotate(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "p.yaml", pod("p", {"app": "web"}))))
    assert kc.ok("label", "pod", "p", "-n", ns, "env=prod") == "pod/p labeled\n"
    clash = kc.run("label", "pod", "p", "-n", ns, "env=dev")
    assert (clash.returncode, clash.stderr) == (
        1, "error: 'env' already has a value (prod), and --overwrite is false\n")
    assert kc.ok("label", "pod", "p", "-n", ns, "env=dev", "--overwrite") == "pod/p labeled\n"
    assert rows(kc.ok("get", "pod", "p", "-n", ns, "--show-labels"))["p"][-1] == "app=web,env=dev"
    assert kc.ok("label", "pod", "p", "-n", ns, "env-") == "pod/p unlabeled\n"
    assert kc.ok("annotate", "pod", "p", "-n", ns, "owner=team-a") == "pod/p annotated\n"
    meta = kc.json("get", "pod", "p", "-n", ns)["metadata"]
    assert meta["labels"] == {"app": "web"}
    assert meta["annotations"] == {"owner": "team-a"}
    assert kc.ok("annotate", "pod", "p", "-n", ns, "owner-") == "pod/p annotated\n"
    assert "annotations" not in kc.json("get", "pod", "p", "-n", ns)["metadata"]


def test_label_node_then_select_it(admin: Kubectl, tmp_path: Path) -> None:
    admin.ok("create", "-f", str(write(tmp_path, "node.yaml", node("labelled"))))
    assert admin.ok("label", "node", "labelled", "disk=ssd") == "node/labelled labeled\n"
    assert admin.ok("get", "nodes", "-l", "disk=ssd", "-o", "name") == "node/labelled\n"


# -- imperative create ---------------------------------------------------------------------------


def test_create_namespace_configmap_secret_imperatively(kc: Kubectl, request: pytest.FixtureRequest) -> None:
    ns = f"imperative-{request.node.callspec.id}"
    assert kc.ok("create", "namespace", ns) == f"namespace/{ns} created\n"
    assert rows(kc.ok("get", "ns", ns))[ns][1] == "Active"
    assert kc.ok("create", "configmap", "cfg", "-n", ns, "--from-literal=mode=fast",
                 "--from-literal=level=3") == "configmap/cfg created\n"
    assert kc.ok("get", "cm", "cfg", "-n", ns, "-o", "jsonpath={.data.mode} {.data.level}") == "fast 3"
    assert kc.ok("create", "secret", "generic", "pw", "-n", ns, "--from-literal=password=s3cr3t!",
                 "--type=example.com/pw") == "secret/pw created\n"
    encoded = kc.ok("get", "secret", "pw", "-n", ns, "-o", "jsonpath={.data.password}")
    assert base64.b64decode(encoded) == b"s3cr3t!"
    assert kc.ok("get", "secret", "pw", "-n", ns, "-o", "jsonpath={.type}") == "example.com/pw"
    dup = kc.run("create", "configmap", "cfg", "-n", ns)
    assert dup.stderr == 'error: failed to create configmap: configmaps "cfg" already exists\n'


def test_create_in_missing_namespace(kc: Kubectl, tmp_path: Path) -> None:
    proc = kc.run("create", "-n", "no-such-ns", "-f", str(write(tmp_path, "p.yaml", pod("p"))))
    assert proc.returncode == 1
    assert proc.stderr.endswith('namespaces "no-such-ns" not found\n'), proc.stderr


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("manifest", "message"), [
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "empty"}, "spec": {"containers": []}},
     'The Pod "empty" is invalid: spec.containers: Required value'),
    (pod("Bad_Name"),
     'The Pod "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain '
     "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
     "alphanumeric character (e.g. 'example.com', regex used for validation is "
     r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "UPPER"}},
     'The ConfigMap "UPPER" is invalid: metadata.name: Invalid value: "UPPER": a lowercase RFC 1123 subdomain'),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "dotted.name"}},
     'The Namespace "dotted.name" is invalid: metadata.name: Invalid value: "dotted.name": a lowercase RFC 1123 '
     "label must consist of lower case alphanumeric characters or '-'"),
], ids=["pod-without-containers", "pod-bad-name", "configmap-uppercase", "namespace-with-dot"])
def test_invalid_object(admin: Kubectl, ns: str, tmp_path: Path, manifest: dict[str, Any], message: str) -> None:
    proc = admin.run("create", "-n", ns, "-f", str(write(tmp_path, "bad.yaml", manifest)))
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.startswith(message), proc.stderr


def test_raw_unknown_subresource_is_not_found(kc: Kubectl, ns: str, tmp_path: Path) -> None:
    kc.ok("create", "-n", ns, "-f", str(write(tmp_path, "p.yaml", pod("x"))))
    proc = kc.run("get", "--raw", f"/api/v1/namespaces/{ns}/pods/x/nonsense")
    assert (proc.returncode, proc.stderr) == (1, "Error from server (NotFound): the server could not find the "
                                                 "requested resource\n")


@pytest.mark.parametrize("query", ["labelSelector=a%20in%20(", "labelSelector=a%3D%3D%3Db",
                                   "fieldSelector=spec.nope%3Dx"], ids=["unclosed-set", "triple-equals",
                                                                        "unknown-field"])
def test_raw_bad_selector_is_bad_request(kc: Kubectl, query: str) -> None:
    proc = kc.run("get", "--raw", f"/api/v1/pods?{query}")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error from server (BadRequest): "), proc.stderr


def test_bad_label_selector_through_get(kc: Kubectl) -> None:
    proc = kc.run("get", "pods", "-A", "-l", "a in (")
    assert proc.returncode == 1
    assert proc.stderr.startswith('Error from server (BadRequest): Unable to find "/v1, Resource=pods" that match '
                                  'label selector "a in (", field selector "": unable to parse requirement')



# -- the bytes of an answer -------------------------------------------------------------------------


def curl(cluster: Cluster, path: str, *args: str) -> str:
    """The real curl (its own User-Agent) with the admin's bearer token."""
    return subprocess.run(["curl", "-s", "--cacert", str(cluster.pki / "ca.crt"), "-H",
                           f"Authorization: Bearer {cluster.token('admin')}", *args, cluster.url + path],
                          capture_output=True, text=True, timeout=30, check=True).stdout


def test_json_is_compact_for_kubectl_and_indented_for_curl(cluster: Cluster, admin: Kubectl) -> None:
    """The API codec writes compact JSON and a newline (json.Encoder); for curl, Wget and browsers, or
    ``?pretty=true``, two-space MarshalIndent without one. /version is always indented."""
    raw = admin.ok("get", "--raw", "/api/v1/namespaces/default")
    doc = json.loads(raw)
    assert doc["kind"] == "Namespace" and raw == json.dumps(doc, separators=(",", ":")) + "\n"
    pretty = curl(cluster, "/api/v1/namespaces/default")
    assert pretty == json.dumps(doc, indent=2)
    assert admin.ok("get", "--raw", "/api/v1/namespaces/default?pretty=true") == pretty
    assert curl(cluster, "/api/v1/namespaces/default?pretty=false") == raw
    assert curl(cluster, "/api/v1/namespaces/nosuch") == (  # metav1.Status in Go's field order
        '{\n  "kind": "Status",\n  "apiVersion": "v1",\n  "metadata": {},\n  "status": "Failure",\n'
        '  "message": "namespaces \\"nosuch\\" not found",\n  "reason": "NotFound",\n'
        '  "details": {\n    "name": "nosuch",\n    "kind": "namespaces"\n  },\n  "code": 404\n}')
    version = admin.ok("get", "--raw", "/version")
    assert version.startswith('{\n  "major": "1",\n  "minor": ') and version.endswith("\n}")
