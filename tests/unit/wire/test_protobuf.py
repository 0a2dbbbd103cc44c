"""miniapi.wire.protobuf: real kubectl bodies decode to the JSON a real apiserver would see."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapi.wire.protobuf import CONTENT_TYPE, MAGIC, ProtobufError, decode, encode, encode_message
from tests.unit.wire.captures import captured

SSAR = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview"}
CSR_META = {
    "name": "csr1", "uid": "0d9f1a4e-1111-2222-3333-444455556666", "resourceVersion": "42",
    "generation": 3, "creationTimestamp": "2026-07-01T12:00:00Z", "labels": {"l": "v"},
    "annotations": {"a": "b"}, "finalizers": ["f1"],
    "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "node1", "uid": "uid-n1",
                         "controller": True}],
}
CSR_SPEC = {
    "request": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlJQgotLS0tLUVORCBDRVJUSUZJQ0FURSBSRVFV"
               "RVNULS0tLS0K",
    "signerName": "kubernetes.io/kube-apiserver-client", "expirationSeconds": 86400,
    "usages": ["digital signature", "client auth"], "username": "alice", "uid": "uid-alice",
    "groups": ["system:authenticated", "dev"], "extra": {"scopes": ["a", "b"]},
}

EXPECTED: dict[str, dict[str, Any]] = {
    "create_namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}},
    "create_configmap": {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": "cm1", "namespace": "ns1"},
                         "data": {"a": "b", "c": "d"}, "binaryData": {"bin": "/wABYmlu"}},
    "create_secret_generic": {"apiVersion": "v1", "kind": "Secret",
                              "metadata": {"name": "s1", "namespace": "ns1"},
                              "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"},
    "create_serviceaccount": {"apiVersion": "v1", "kind": "ServiceAccount",
                              "metadata": {"name": "sa1", "namespace": "ns1"}},
    "create_token": {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": {"audiences": ["foo", "bar"], "expirationSeconds": 600,
                              "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p1",
                                                 "uid": "uid-p1"}}},
    "can_i_resource": {**SSAR, "spec": {"resourceAttributes": {
        "namespace": "ns1", "verb": "create", "resource": "pods", "subresource": "exec"}}},
    "can_i_name": {**SSAR, "spec": {"resourceAttributes": {
        "namespace": "ns1", "verb": "get", "resource": "secrets", "name": "s1"}}},
    "can_i_nonresource": {**SSAR, "spec": {"nonResourceAttributes": {"path": "/logs", "verb": "get"}}},
    "can_i_list": {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                   "spec": {"namespace": "ns1"}},
    "whoami": {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
}


def _only_body(name: str) -> tuple[dict[str, Any], bytes]:
    [request] = captured(name)
    return request, bytes.fromhex(request["body_hex"])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_kubectl_body_decodes(name: str) -> None:
    request, body = _only_body(name)
    assert request["content_type"] == CONTENT_TYPE
    assert decode(body) == EXPECTED[name]


@pytest.mark.parametrize("name,condition_type,reason", [("certificate_approve", "Approved", "KubectlApprove"),
                                                        ("certificate_deny", "Denied", "KubectlDeny")])
def test_real_kubectl_csr_approval_body_decodes(name: str, condition_type: str, reason: str) -> None:
    request, body = _only_body(name)
    assert request["method"] == "PUT" and request["path"].endswith("/csr1/approval")
    obj = decode(body)
    assert obj["metadata"] == CSR_META
    assert obj["spec"] == CSR_SPEC
    [condition] = obj["status"]["conditions"]
    assert condition["type"] == condition_type and condition["status"] == "True"
    assert condition["reason"] == reason
    assert condition["lastUpdateTime"].endswith("Z") and "lastTransitionTime" not in condition


@pytest.mark.parametrize("obj", [
    pytest.param({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                  "spec": {"resourceAttributes": {"verb": "list", "resource": "nodes"}, "user": "bob",
                           "groups": ["g1", "g2"], "extra": {"k": ["v1", "v2"], "empty": []},
                           "uid": "u1"}}, id="SubjectAccessReview"),
    pytest.param({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                  "spec": {"token": "abc.def", "audiences": ["api"]}}, id="TokenReview"),
    pytest.param({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                  "orphanDependents": False, "propagationPolicy": "Foreground", "dryRun": ["All"],
                  "preconditions": {"uid": "u", "resourceVersion": "7"}}, id="DeleteOptions-zero-pointers"),
    pytest.param({"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": -1},
                 id="DeleteOptions-negative-int64"),
    pytest.param({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "immutable": False,
                  "data": {"k": ""}}, id="ConfigMap-immutable-false"),
    pytest.param({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a": "b"},
                  "immutable": True, "type": "kubernetes.io/tls"}, id="Secret-stringData"),
    pytest.param({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"},
                  "secrets": [{"name": "tok"}], "imagePullSecrets": [{"name": "reg"}],
                  "automountServiceAccountToken": False}, id="ServiceAccount"),
    pytest.param({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n",
                  "deletionTimestamp": "2030-01-02T03:04:05Z", "deletionGracePeriodSeconds": 0},
                  "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}},
                 id="Namespace"),
])
def test_encode_decode_round_trip(obj: dict[str, Any]) -> None:
    assert decode(encode(obj)) == obj


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _len_field(1, api_version.encode()) + _len_field(2, kind.encode())
    return MAGIC + _len_field(1, type_meta) + _len_field(2, raw)


def _len_field(number: int, value: bytes) -> bytes:
    assert len(value) < 128
    return bytes([number << 3 | 2, len(value)]) + value


def test_envelope_helper_matches_real_kubectl_bytes() -> None:
    _, body = _only_body("create_namespace")
    raw = encode_message({"metadata": {"name": "foo"}}, "Namespace")
    assert decode(_envelope("v1", "Namespace", raw)) == decode(body)


def test_unknown_fields_of_every_wire_type_are_skipped() -> None:
    unknown = bytes([0xF8, 0x07, 0x96, 0x01,            # field 127 varint 150
                     0xF9, 0x07, *b"\x01" * 8,          # field 127 fixed64
                     0xFA, 0x07, 0x02, 0xAA, 0xBB,      # field 127 length-delimited
                     0xFD, 0x07, *b"\x02" * 4])         # field 127 fixed32
    meta = _len_field(1, b"foo") + unknown
    raw = unknown + _len_field(1, meta) + unknown
    assert decode(_envelope("v1", "Namespace", raw)) == {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "foo"}}


@pytest.mark.parametrize("body,message", [
    pytest.param(b"", "does not appear to be a protobuf message", id="empty"),
    pytest.param(b'{"kind":"Namespace"}', "does not appear to be a protobuf message", id="json"),
    pytest.param(MAGIC + b"\x0a\x05\x0a\x02v1", "past the end", id="length-past-end"),
    pytest.param(MAGIC + b"\x08\xff\xff", "end of data inside a varint", id="truncated-varint"),
    pytest.param(MAGIC + b"\x08" + b"\xff" * 11, "longer than 10 bytes", id="overlong-varint"),
    pytest.param(MAGIC + b"\x0b", "unsupported wire type 3", id="group"),
    pytest.param(MAGIC + b"\x00\x00", "field number 0", id="field-zero"),
    pytest.param(MAGIC + b"\x09\x00\x00", "fixed-width", id="truncated-fixed64"),
    pytest.param(MAGIC, "'Kind' is missing", id="no-typemeta"),
    pytest.param(MAGIC + b"\x0a\x08\x0a\x02v1\x12\x02Po", 'no kind "Po" is registered for version "v1"',
                 id="unknown-kind"),
])
def test_malformed_input_raises_protobuf_error(body: bytes, message: str) -> None:
    with pytest.raises(ProtobufError, match=message) as info:
        decode(body)
    assert message in info.value.message


def test_schema_wire_type_mismatch_is_an_error() -> None:
    # metadata.name (field 1 of ObjectMeta, a string) sent as a varint
    body = _envelope("v1", "Namespace", _len_field(1, b"\x08\x01"))
    with pytest.raises(ProtobufError, match="field name: wire type 0, expected 2"):
        decode(body)


def test_encode_rejects_unregistered_kind() -> None:
    with pytest.raises(ProtobufError, match='no kind "Pod"'):
        encode({"apiVersion": "v1", "kind": "Pod"})


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_but_protobuf_error(tail: bytes) -> None:
    for body in (tail, MAGIC + tail):
        try:
            assert isinstance(decode(body), dict)
        except ProtobufError:
            pass


ALL_BODIES = [bytes.fromhex(r["body_hex"]) for n in [*EXPECTED, "certificate_approve"] for r in captured(n)]


@settings(max_examples=500)
@given(st.sampled_from(ALL_BODIES), st.data())
def test_mutated_real_bodies_never_raise_anything_but_protobuf_error(body: bytes, data: Any) -> None:
    mutated = bytearray(body)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(len(MAGIC), len(mutated) - 1))
        mutated[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(MAGIC), len(mutated)))
    try:
        assert isinstance(decode(bytes(mutated[:cut])), dict)
    except ProtobufError:
        pass
