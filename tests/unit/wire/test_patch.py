"""miniapi.wire.patch: RFC 7386 / RFC 6902 vectors, strategic merge cases, real kubectl bodies."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapi.wire.patch import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    PatchError,
    apply_patch,
    json_merge_patch,
    json_patch,
    strategic_merge_patch,
)
from tests.unit.wire.captures import captured

# The Pod the capture stub served to kubectl (fixtures/capture_kubectl.py, _pod()).
LAST_APPLIED = (
    '{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p1", "namespace": "ns1", '
    '"labels": {"app": "old"}}, "spec": {"containers": [{"name": "c", "image": "nginx", '
    '"env": [{"name": "B", "value": "2"}]}]}}'
)
LIVE_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "p1",
        "namespace": "ns1",
        "labels": {"app": "old"},
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": LAST_APPLIED},
    },
    "spec": {"containers": [{"name": "c", "image": "nginx", "env": [{"name": "B", "value": "2"}]}]},
    "status": {"phase": "Running"},
}


# --- RFC 7386 appendix A -----------------------------------------------------------------------

RFC7386 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(
    "original,patch,expected", RFC7386, ids=[f"rfc7386-{i}" for i in range(len(RFC7386))]
)
def test_json_merge_patch_rfc7386_vectors(original: Any, patch: Any, expected: Any) -> None:
    before = copy.deepcopy(original)
    assert json_merge_patch(original, patch) == expected
    assert original == before


# --- RFC 6902 appendix A -----------------------------------------------------------------------

RFC6902_OK = [
    (
        "add-member",
        {"foo": "bar"},
        [{"op": "add", "path": "/baz", "value": "qux"}],
        {"foo": "bar", "baz": "qux"},
    ),
    (
        "add-array-element",
        {"foo": ["bar", "baz"]},
        [{"op": "add", "path": "/foo/1", "value": "qux"}],
        {"foo": ["bar", "qux", "baz"]},
    ),
    ("remove-member", {"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
    (
        "remove-element",
        {"foo": ["bar", "qux", "baz"]},
        [{"op": "remove", "path": "/foo/1"}],
        {"foo": ["bar", "baz"]},
    ),
    (
        "replace",
        {"baz": "qux", "foo": "bar"},
        [{"op": "replace", "path": "/baz", "value": "boo"}],
        {"baz": "boo", "foo": "bar"},
    ),
    (
        "move-member",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "move-element",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "test-ok",
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [{"op": "test", "path": "/baz", "value": "qux"}, {"op": "test", "path": "/foo/1", "value": 2}],
        {"baz": "qux", "foo": ["a", 2, "c"]},
    ),
    (
        "add-nested",
        {"foo": "bar"},
        [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
        {"foo": "bar", "child": {"grandchild": {}}},
    ),
    (
        "add-array-value",
        {"foo": ["bar"]},
        [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
        {"foo": ["bar", ["abc", "def"]]},
    ),
    ("escaping", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
    ("copy", {"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
    ("replace-root", {"a": 1}, [{"op": "replace", "path": "", "value": {"b": 2}}], {"b": 2}),
    (
        "kubectl-image",
        {"spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        [{"op": "replace", "path": "/spec/containers/0/image", "value": "busybox"}],
        {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
    ),
]


@pytest.mark.parametrize("name,doc,ops,expected", RFC6902_OK, ids=[c[0] for c in RFC6902_OK])
def test_json_patch_rfc6902_vectors(name: str, doc: Any, ops: list[Any], expected: Any) -> None:
    before = copy.deepcopy(doc)
    assert json_patch(doc, ops) == expected
    assert doc == before


RFC6902_ERRORS = [
    (
        "test-fails",
        {"baz": "qux"},
        [{"op": "test", "path": "/baz", "value": "bar"}],
        "testing value /baz failed",
    ),
    ("string-vs-number", {"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], "failed"),
    ("true-is-not-1", {"a": True}, [{"op": "test", "path": "/a", "value": 1}], "failed"),
    ("missing-target", {"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], "missing path"),
    ("remove-missing", {"foo": "bar"}, [{"op": "remove", "path": "/baz"}], "missing key"),
    ("replace-missing", {"foo": "bar"}, [{"op": "replace", "path": "/baz", "value": 1}], "missing key"),
    ("index-out-of-range", {"a": [1]}, [{"op": "add", "path": "/a/5", "value": 1}], "out of bounds"),
    ("leading-zero", {"a": [1, 2]}, [{"op": "remove", "path": "/a/01"}], "not an array index"),
    ("move-into-child", {"a": {"b": {}}}, [{"op": "move", "from": "/a", "path": "/a/b/c"}], "own child"),
    ("unknown-op", {}, [{"op": "frobnicate", "path": "/a"}], "unexpected json patch operation"),
    ("missing-value", {}, [{"op": "add", "path": "/a"}], 'missing "value"'),
    ("missing-op", {}, [{"path": "/a"}], 'no "op"'),
    ("bad-pointer", {}, [{"op": "add", "path": "a", "value": 1}], "not a JSON pointer"),
]


@pytest.mark.parametrize("name,doc,ops,message", RFC6902_ERRORS, ids=[c[0] for c in RFC6902_ERRORS])
def test_json_patch_errors(name: str, doc: Any, ops: list[Any], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        json_patch(doc, ops)


# --- strategic merge patch ---------------------------------------------------------------------


def _pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": list(containers), **spec}}


def _c(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **fields}


SMP_CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    (
        "null-deletes",
        "Pod",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": None, "zz": None}}},
        {"metadata": {"labels": {"b": "2"}}},
    ),
    (
        "new-key-drops-nested-nulls",
        "Pod",
        {},
        {"spec": {"x": {"y": None, "z": 1}}},
        {"spec": {"x": {"z": 1}}},
    ),
    (
        "map-patch-replace",
        "Pod",
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"$patch": "replace", "c": "3"}}},
        {"metadata": {"labels": {"c": "3"}}},
    ),
    (
        "map-patch-delete",
        "Pod",
        {"metadata": {"labels": {"a": "1"}}, "spec": {}},
        {"metadata": {"labels": {"$patch": "delete"}}},
        {"metadata": {"labels": {}}, "spec": {}},
    ),
    (
        "containers-merge-by-name",
        "Pod",
        _pod(_c("a", image="x"), _c("b", image="y")),
        {"spec": {"containers": [_c("b", image="z")]}},
        _pod(_c("a", image="x"), _c("b", image="z")),
    ),
    # mergeSortedSlice: an item the server never had is placed before server-only items unless
    # $setElementOrder says otherwise (kubectl apply always sends it)
    (
        "containers-new-goes-first",
        "Pod",
        _pod(_c("a", image="x")),
        {"spec": {"containers": [_c("n", image="n")]}},
        _pod(_c("n", image="n"), _c("a", image="x")),
    ),
    (
        "env-and-ports-nested-merge",
        "Pod",
        _pod(_c("a", env=[{"name": "A", "value": "1"}], ports=[{"containerPort": 80, "name": "http"}])),
        {
            "spec": {
                "containers": [
                    _c(
                        "a",
                        env=[{"name": "B", "value": "2"}],
                        ports=[{"containerPort": 80, "protocol": "TCP"}],
                    )
                ]
            }
        },
        _pod(
            _c(
                "a",
                env=[{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
                ports=[{"containerPort": 80, "name": "http", "protocol": "TCP"}],
            )
        ),
    ),
    (
        "element-patch-delete",
        "Pod",
        _pod(_c("a"), _c("b")),
        {"spec": {"containers": [{"$patch": "delete", "name": "a"}]}},
        _pod(_c("b")),
    ),
    (
        "element-patch-replace",
        "Pod",
        _pod(_c("a"), _c("b")),
        {"spec": {"containers": [{"$patch": "replace"}, _c("x")]}},
        _pod(_c("x")),
    ),
    (
        "no-merge-key-list-replaced",
        "Pod",
        _pod(tolerations=[{"key": "a"}, {"key": "b"}]),
        {"spec": {"tolerations": [{"key": "c"}]}},
        _pod(tolerations=[{"key": "c"}]),
    ),
    (
        "finalizers-union",
        "Pod",
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["b", "c"]}},
        {"metadata": {"finalizers": ["a", "b", "c"]}},
    ),
    (
        "delete-from-primitive-list",
        "Pod",
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"finalizers": ["a", "c"]}},
    ),
    (
        "owner-references-by-uid",
        "ConfigMap",
        {"metadata": {"ownerReferences": [{"uid": "1", "name": "x"}]}},
        {"metadata": {"ownerReferences": [{"uid": "2", "name": "y"}, {"uid": "1", "controller": True}]}},
        {
            "metadata": {
                "ownerReferences": [{"uid": "2", "name": "y"}, {"uid": "1", "name": "x", "controller": True}]
            }
        },
    ),
    (
        "node-conditions-by-type",
        "Node",
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "DiskPressure", "status": "False"},
                ]
            }
        },
        {"status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "DiskPressure", "status": "False"},
                ]
            }
        },
    ),
    (
        "set-element-order-only",
        "Pod",
        _pod(_c("a"), _c("b")),
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}},
        _pod(_c("b"), _c("a")),
    ),
    (
        "server-only-keeps-its-slot",
        "Pod",
        _pod(_c("a"), _c("b"), _c("c")),
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "new"}, {"name": "c"}],
                "containers": [_c("new", image="n")],
            }
        },
        _pod(_c("a"), _c("new", image="n"), _c("b"), _c("c")),
    ),
    (
        "retain-keys",
        "Deployment",
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        {"spec": {"strategy": {"type": "Recreate"}}},
    ),
    (
        "deployment-template-containers",
        "Deployment",
        {"spec": {"template": {"spec": {"containers": [_c("a", image="1"), _c("b", image="1")]}}}},
        {"spec": {"template": {"spec": {"containers": [_c("b", image="2")]}}}},
        {"spec": {"template": {"spec": {"containers": [_c("a", image="1"), _c("b", image="2")]}}}},
    ),
    (
        "unknown-kind-replaces-lists",
        "Widget",
        {"spec": {"items": [{"name": "a"}]}, "metadata": {"finalizers": ["x"]}},
        {"spec": {"items": [{"name": "b"}]}, "metadata": {"finalizers": ["y"]}},
        {"spec": {"items": [{"name": "b"}]}, "metadata": {"finalizers": ["y", "x"]}},
    ),
    (
        "type-change-replaces",
        "Pod",
        {"spec": {"x": [1]}},
        {"spec": {"x": {"a": 1}}},
        {"spec": {"x": {"a": 1}}},
    ),
]


@pytest.mark.parametrize("name,kind,original,patch,expected", SMP_CASES, ids=[c[0] for c in SMP_CASES])
def test_strategic_merge_patch(
    name: str, kind: str, original: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    before, patch_before = copy.deepcopy(original), copy.deepcopy(patch)
    assert strategic_merge_patch(original, patch, kind) == expected
    assert (original, patch) == (before, patch_before)


SMP_ERRORS = [
    ("unknown-map-directive", {"metadata": {"$patch": "frobnicate"}}, "unknown patch type: frobnicate"),
    (
        "element-without-merge-key",
        {"spec": {"containers": [{"image": "x"}]}},
        "does not contain declared merge key: name",
    ),
    ("delete-without-merge-key", {"spec": {"containers": [{"$patch": "delete"}]}}, "declared merge key"),
    ("list-merge-directive", {"spec": {"containers": [{"$patch": "merge"}]}}, "cannot yet be specified"),
    ("mixed-element-types", {"spec": {"containers": ["x"]}}, "must all be objects or all be scalars"),
    (
        "order-mismatch",
        {"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [_c("zz")]}},
        "doesn't match \\$setElementOrder/containers",
    ),
    ("retain-keys-not-subset", {"spec": {"$retainKeys": ["a"], "b": 1}}, "not a subset of \\$retainKeys"),
]


@pytest.mark.parametrize("name,patch,message", SMP_ERRORS, ids=[c[0] for c in SMP_ERRORS])
def test_strategic_merge_patch_errors(name: str, patch: dict[str, Any], message: str) -> None:
    with pytest.raises(PatchError, match=message):
        strategic_merge_patch(_pod(_c("a")), patch, "Pod")


# --- real kubectl bodies through apply_patch ---------------------------------------------------


def test_real_kubectl_client_side_apply_patch() -> None:
    [request] = captured("apply_existing")
    assert request["content_type"] == STRATEGIC_MERGE_PATCH
    result = apply_patch(LIVE_POD, request["body"].encode(), request["content_type"], "Pod")
    assert result["metadata"]["labels"] == {"app": "web"}
    assert result["spec"] == {
        "containers": [
            {"name": "c", "image": "nginx:1.27", "env": [{"name": "A", "value": "1"}]},
            {"image": "busybox", "name": "sidecar"},
        ]
    }
    applied = json.loads(
        result["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert applied["spec"]["containers"][1]["name"] == "sidecar"
    assert result["status"] == {"phase": "Running"}
    assert not any("$" in key for key in json.dumps(result).split('"'))


def test_real_kubectl_server_side_apply_merges_desired_object() -> None:
    first, second = captured("apply_server_side")
    assert first["content_type"] == APPLY_PATCH and "fieldManager=kubectl&" in first["query"] + "&"
    result = apply_patch(LIVE_POD, first["body"].encode(), first["content_type"], "Pod")
    assert [c["name"] for c in result["spec"]["containers"]] == ["c", "sidecar"]
    assert result["spec"]["containers"][0]["image"] == "nginx:1.27"
    # simplification: fields the manager stopped applying are kept (real SSA would drop env B)
    assert result["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "1"},
        {"name": "B", "value": "2"},
    ]
    result = apply_patch(result, second["body"].encode(), second["content_type"], "Pod")
    assert (
        result["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == LAST_APPLIED
    )


@pytest.mark.parametrize(
    "name,kind,path,expected",
    [
        ("cordon", "Node", ("spec", "unschedulable"), True),
        ("label_node", "Node", ("metadata", "labels", "role"), "worker"),
        ("annotate_pod", "Pod", ("metadata", "annotations", "note"), "hi"),
        ("patch_merge", "Pod", ("metadata", "labels", "x"), "y"),
        ("patch_json", "Pod", ("spec", "containers", 0, "image"), "busybox"),
    ],
)
def test_real_kubectl_patch_bodies(name: str, kind: str, path: tuple[Any, ...], expected: Any) -> None:
    [request] = captured(name)
    assert request["method"] == "PATCH"
    node: Any = apply_patch(LIVE_POD, request["body"].encode(), request["content_type"], kind)
    for part in path:
        node = node[part]
    assert node == expected


@pytest.mark.parametrize(
    "body,content_type,code,message",
    [
        (b"{}", "application/json", 415, "unknown format"),
        (b"{", MERGE_PATCH, 400, "error decoding patch"),
        (b"\xff", STRATEGIC_MERGE_PATCH, 400, "error decoding patch"),
        (b"{}", JSON_PATCH, 400, "must be a list"),
        (b"[]", STRATEGIC_MERGE_PATCH, 400, "must be a JSON object"),
        (b'"x"', MERGE_PATCH, 422, "not a JSON object"),
        (b"- a\n- b\n", APPLY_PATCH, 400, "YAML or JSON object"),
        (b"a: [", APPLY_PATCH, 400, "error decoding YAML"),
        (b"a: !!binary aGk=", APPLY_PATCH, 400, "type bytes has no JSON form"),
        (b"? [1, 2]\n: x", APPLY_PATCH, 400, "error decoding YAML|has no JSON form"),
        (b'[{"op":"test","path":"/kind","value":"Node"}]', JSON_PATCH, 422, "failed"),
    ],
)
def test_apply_patch_errors_carry_http_code(body: bytes, content_type: str, code: int, message: str) -> None:
    with pytest.raises(PatchError, match=message) as info:
        apply_patch(LIVE_POD, body, content_type, "Pod")
    assert info.value.code == code


def test_apply_patch_accepts_media_type_parameters_and_yaml() -> None:
    result = apply_patch(
        LIVE_POD, b"metadata:\n  labels:\n    tier: web\n", APPLY_PATCH + "; charset=utf-8", "Pod"
    )
    assert result["metadata"]["labels"] == {"app": "old", "tier": "web"}
    result = apply_patch(
        LIVE_POD, b"metadata:\n  annotations:\n    7: 2026-07-01\n    false: b\n", APPLY_PATCH, "Pod"
    )
    assert {"7": "2026-07-01", "false": "b"}.items() <= result["metadata"]["annotations"].items()
    result = apply_patch(
        LIVE_POD, b'{"spec":{"nodeName":"n1"}}', "Application/Merge-Patch+JSON; charset=utf-8", "Pod"
    )
    assert result["spec"]["nodeName"] == "n1"


# --- hypothesis --------------------------------------------------------------------------------

KEYS = st.sampled_from(
    [
        "name",
        "image",
        "a",
        "b",
        "containers",
        "env",
        "finalizers",
        "spec",
        "metadata",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$deleteFromPrimitiveList/finalizers",
        "replace",
        "delete",
        "merge",
    ]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["a", "b", "replace", "delete"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400)
@given(st.dictionaries(KEYS, JSON, max_size=5), st.sampled_from(["Pod", "Node", "Deployment", "Widget"]))
def test_strategic_merge_patch_never_raises_anything_but_patch_error(
    patch: dict[str, Any], kind: str
) -> None:
    original = {"metadata": {"finalizers": ["a"]}, "spec": {"containers": [_c("a", env=[{"name": "b"}])]}}
    try:
        assert isinstance(strategic_merge_patch(original, {"spec": patch, **patch}, kind), dict)
    except PatchError:
        pass


@settings(max_examples=300)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["op", "path", "from", "value"]),
            JSON
            | st.sampled_from(
                [
                    "add",
                    "remove",
                    "replace",
                    "move",
                    "copy",
                    "test",
                    "",
                    "/a",
                    "/a/0",
                    "/a/-",
                    "/b/c",
                    "/~",
                    "/a/01",
                ]
            ),
        ),
        max_size=5,
    ),
    JSON,
)
def test_json_patch_never_raises_anything_but_patch_error(ops: list[Any], doc: Any) -> None:
    try:
        json_patch({"a": [doc], "b": {"c": doc}}, ops)
    except PatchError:
        pass


@settings(max_examples=300)
@given(JSON, JSON)
def test_json_merge_patch_is_idempotent(original: Any, patch: Any) -> None:
    once = json_merge_patch(original, patch)
    assert json_merge_patch(once, patch) == once


@settings(max_examples=300)
@given(
    st.binary(max_size=100)
    | st.text(alphabet=st.sampled_from(list('ab:{}[]-!?,&*\n 1"')), max_size=60).map(str.encode),
    st.sampled_from([JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH]),
)
def test_apply_patch_random_bodies_raise_only_patch_error(body: bytes, content_type: str) -> None:
    try:
        assert isinstance(apply_patch(LIVE_POD, body, content_type, "Pod"), dict)
    except PatchError:
        pass
