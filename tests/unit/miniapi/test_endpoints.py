"""The REST handlers' pure helpers: body decoding (negotiation), typed-decoding errors, query parameters,
continue tokens, dryRun, and selectors -> 400; hypothesis: decoders only ever raise ApiError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from miniapi import errors
from miniapi.endpoints import negotiation
from miniapi.endpoints.objects import (
    Filter,
    decode_continue,
    decode_error,
    delete_options_error,
    dry_run,
    encode_continue,
    parse_int,
    parse_rv,
    sort_key,
)
from miniapi.resources import lookup
from miniapi.wire import protobuf

PODS = lookup("", "pods")
assert PODS is not None


# -- negotiation.decode_object --------------------------------------------------------------------

@pytest.mark.parametrize("ctype", ["application/json", "", "application/merge-patch+json", "text/plain"])
def test_json_bodies_decode_with_or_without_content_type(ctype: str) -> None:
    assert negotiation.decode_object(b'{"a": 1}', ctype) == {"a": 1}


def test_yaml_body() -> None:
    assert negotiation.decode_object(b"metadata:\n  name: x\n", "application/yaml") == {
        "metadata": {"name": "x"}}


def test_protobuf_body() -> None:
    body = protobuf.encode({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}})
    assert negotiation.decode_object(body, negotiation.PROTOBUF)["metadata"] == {"name": "foo"}


@pytest.mark.parametrize("raw, ctype, code, message", [
    (b"{", "application/json", 400, "invalid JSON"),
    (b"", "application/json", 400, "empty body"),
    (b"  \n", "", 400, "empty body"),
    (b"[]", "application/json", 400, "must be a JSON object"),
    (b"\xff\xfe", "application/json", 400, "invalid JSON"),
    (b"a: [", "application/yaml", 400, "error converting YAML to JSON"),
    (b"- 1", "application/yaml", 400, "must be a JSON object"),
    (b"nope", negotiation.PROTOBUF, 400, "expected prefix [107 56 115 0]"),
    (b"k8s\x00\x0a", negotiation.PROTOBUF, 400, "not valid protobuf"),
    (b"{}", "text/html", 415, "unknown format"),
    (b"{}", "application/vnd.kubernetes.protobuf;stream=watch", 415, "unknown format"),
], ids=["json-truncated", "json-empty", "blank-no-ctype", "json-array", "not-utf8", "yaml-broken",
        "yaml-list", "protobuf-no-magic", "protobuf-truncated", "html", "protobuf-stream"])
def test_decode_object_errors(raw: bytes, ctype: str, code: int, message: str) -> None:
    with pytest.raises(errors.ApiError) as err:
        negotiation.decode_object(raw, ctype)
    assert err.value.code == code and message in err.value.message


@given(raw=st.binary(max_size=64) | st.binary(max_size=48).map(lambda b: b"k8s\x00" + b),
       ctype=st.sampled_from(["application/json", "", "application/yaml", negotiation.PROTOBUF, "x/y"]))
def test_decode_object_raises_only_api_errors(raw: bytes, ctype: str) -> None:
    try:
        obj = negotiation.decode_object(raw, ctype)
    except errors.ApiError as err:
        assert 400 <= err.code < 500
    else:
        assert isinstance(obj, dict)


# -- typed decoding ------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, obj, message", [
    ("ConfigMap", {"metadata": "x"}, "cannot unmarshal string into Go struct field ConfigMap.metadata of "
                                     "type v1.ObjectMeta"),
    ("ConfigMap", {"metadata": {"name": 1}}, "cannot unmarshal number into Go struct field "
                                             "ObjectMeta.metadata.name of type string"),
    ("ConfigMap", {"metadata": {"labels": {"a": True}}}, "cannot unmarshal bool into Go struct field "
                                                         "ObjectMeta.metadata.labels of type string"),
    ("ConfigMap", {"metadata": {"annotations": []}}, "array into Go struct field "
                                                     "ObjectMeta.metadata.annotations of type map"),
    ("ConfigMap", {"metadata": {"finalizers": [1]}}, "of type []string"),
    ("ConfigMap", {"metadata": {"ownerReferences": {}}}, "of type []v1.OwnerReference"),
    ("Pod", {"spec": []}, "cannot unmarshal array into Go struct field Pod.spec of type v1.PodSpec"),
    ("Node", {"status": 1.5}, "Node.status of type v1.NodeStatus"),
], ids=["metadata-string", "name-number", "label-bool", "annotations-list", "finalizers-ints",
        "owners-object", "pod-spec-list", "node-status-float"])
def test_decode_error(kind: str, obj: dict[str, Any], message: str) -> None:
    assert message in (decode_error(kind, obj) or "")


@pytest.mark.parametrize("kind, obj", [
    ("ConfigMap", {}),
    ("ConfigMap", {"metadata": None, "data": {"a": "b"}}),
    ("ConfigMap", {"metadata": {"name": "x", "labels": {"a": "b"}, "annotations": None}}),
    ("ConfigMap", {"spec": "ignored: a ConfigMap has no spec"}),
    ("Pod", {"metadata": {"name": "p"}, "spec": None, "status": {}}),
])
def test_decode_ok(kind: str, obj: dict[str, Any]) -> None:
    assert decode_error(kind, obj) is None


def test_null_label_value_decodes_as_empty_string() -> None:
    obj = {"metadata": {"labels": {"a": None}}}
    assert decode_error("ConfigMap", obj) is None
    assert obj["metadata"]["labels"] == {"a": ""}


@pytest.mark.parametrize("options, message", [
    ({"gracePeriodSeconds": "30"}, "DeleteOptions.gracePeriodSeconds of type int64"),
    ({"gracePeriodSeconds": True}, "cannot unmarshal bool"),
    ({"propagationPolicy": 1}, "DeleteOptions.propagationPolicy"),
    ({"orphanDependents": "yes"}, "DeleteOptions.orphanDependents of type bool"),
    ({"preconditions": []}, "DeleteOptions.preconditions of type v1.Preconditions"),
    ({"preconditions": {"uid": 5}}, "Preconditions.preconditions.uid of type string"),
    ({"dryRun": "All"}, "DeleteOptions.dryRun of type []string"),
])
def test_delete_options_error(options: dict[str, Any], message: str) -> None:
    assert message in (delete_options_error(options) or "")


def test_delete_options_ok() -> None:
    assert delete_options_error({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                                 "propagationPolicy": "Background", "dryRun": ["All"],
                                 "preconditions": {"uid": "u", "resourceVersion": None}}) is None


@pytest.mark.parametrize("values, expected", [([], False), (["All"], True), (["All", "All"], True)])
def test_dry_run_accepts_only_all(values: list[str], expected: bool) -> None:
    assert dry_run(values, "CreateOptions") is expected


def test_dry_run_typo_is_invalid() -> None:
    with pytest.raises(errors.ApiError) as err:
        dry_run(["All", "true"], "PatchOptions")
    assert (err.value.code, err.value.reason) == (422, "Invalid")
    assert err.value.message == ('PatchOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: '
                                 '[]string{"All", "true"}: supported values: "All"')


# -- query parameters ----------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [(None, 7), ("", 7), ("0", 0), ("500", 500),
                                             (str((1 << 63) - 1), (1 << 63) - 1)])
def test_parse_int(value: str | None, expected: int) -> None:
    query = MultiDict({"limit": value} if value is not None else {})
    assert parse_int(query, "limit", 7) == expected


@pytest.mark.parametrize("value, message", [
    ("ten", 'invalid value for limit: "ten" is not an integer'),
    ("1.5", "is not an integer"),
    ("-1", "limit: Invalid value: -1: must be greater than or equal to 0"),
    (str(1 << 63), "is out of range"),
])
def test_parse_int_errors(value: str, message: str) -> None:
    with pytest.raises(errors.ApiError) as err:
        parse_int(MultiDict({"limit": value}), "limit")
    assert err.value.code == 400 and message in err.value.message


@pytest.mark.parametrize("value, expected", [(None, None), ("", None), ("0", 0), ("42", 42)])
def test_parse_rv(value: str | None, expected: int | None) -> None:
    assert parse_rv(value) == expected


@pytest.mark.parametrize("value", ["abc", "-1", "1.0", "0x10"])
def test_parse_rv_errors(value: str) -> None:
    with pytest.raises(errors.ApiError) as err:
        parse_rv(value)
    assert err.value.code == 400 and f'resourceVersion: Invalid value: "{value}"' in err.value.message


@given(rv=st.integers(0, 1 << 62), after=st.text(max_size=40))
def test_continue_token_round_trips(rv: int, after: str) -> None:
    token = encode_continue(rv, after)
    assert "=" not in token and decode_continue(token) == (rv, after)


@given(token=st.text(max_size=40))
def test_continue_token_garbage_is_400(token: str) -> None:
    try:
        rv, after = decode_continue(token)
    except errors.ApiError as err:
        assert err.code == 400 and "continue key is not valid" in err.message
    else:
        assert isinstance(rv, int) and isinstance(after, str)


def test_sort_key_orders_by_namespace_then_name() -> None:
    objs = [{"metadata": {"namespace": "b", "name": "a"}}, {"metadata": {"namespace": "a", "name": "z"}},
            {"metadata": {"name": "cluster"}}]
    assert [sort_key(o) for o in sorted(objs, key=sort_key)] == ["/cluster", "a/z", "b/a"]


def test_filter_matches_labels_and_fields() -> None:
    keep = Filter(PODS, MultiDict({"labelSelector": "app=web", "fieldSelector": "spec.nodeName=n1"}))
    pod = {"metadata": {"name": "p", "namespace": "d", "labels": {"app": "web"}}, "spec": {"nodeName": "n1"}}
    assert keep(pod)
    assert not keep({**pod, "spec": {"nodeName": "n2"}})
    assert not keep({**pod, "metadata": {"name": "p", "namespace": "d"}})


@pytest.mark.parametrize("query", [{"labelSelector": "a in ("}, {"fieldSelector": "spec.bogus=1"},
                                   {"fieldSelector": "metadata.name"}])
def test_filter_errors_are_400(query: dict[str, str]) -> None:
    with pytest.raises(errors.ApiError) as err:
        Filter(PODS, MultiDict(query))
    assert err.value.code == 400 and err.value.reason == "BadRequest"


def test_json_response_is_compact_utf8() -> None:
    resp = negotiation.json_response({"message": "héllo"}, 201)
    assert resp.status == 201 and resp.content_type == "application/json"
    assert resp.body == '{"message":"héllo"}\n'.encode()  # json.Encoder.Encode: compact, then a newline
