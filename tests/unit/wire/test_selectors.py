"""miniapi.wire.selectors / fieldselectors: the grammar of labels/selector.go and fields/selector.go."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miniapi.wire.fieldselectors import field_value, parse_field_selector
from miniapi.wire.selectors import (
    SelectorError,
    label_selector_from_dict,
    label_selector_from_set,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "env": "prod", "replicas": "3", "empty": "", "example.com/team": "a"}

LABEL_CASES = [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("app!=web", False),
    ("missing!=x", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("env in (prod,staging)", True),
    ("env in (dev)", False),
    ("env notin (dev,test)", True),
    ("env notin (prod)", False),
    ("missing notin (x)", True),
    ("missing in (x)", False),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
    ("  app = web , !missing ", True),
    ("replicas>2", True),
    ("replicas<2", False),
    ("app>2", False),
    ("empty=", True),
    ("empty in ()", True),
    ("app in (,web)", True),
    ("app in (web,)", True),
    ("example.com/team=a", True),
    ("in=x", False),
    ("app in (in,web)", True),
]


@pytest.mark.parametrize("text,expected", LABEL_CASES, ids=[c[0] or "<empty>" for c in LABEL_CASES])
def test_label_selector_matches(text: str, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


LABEL_ERRORS = [
    ("app=web,", "found '', expected: identifier after ','"),
    (",app", "found ',', expected: !, identifier, or 'end of string'"),
    ("app in (web", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("app in web", "unable to parse requirement: found 'web' expected: '('"),
    ("app in (a b)", "found 'b', expected: ',' or ')'"),
    ("app web", "unable to parse requirement: found 'web', expected: !=, <, =, ==, >, in, notin"),
    ("app=web=x", "found '=', expected: ',' or 'end of string'"),
    ("!app=web", "found '=', expected: ',' or 'end of string'"),
    ("a$=b", 'unable to parse requirement: key: Invalid value: "a$": name part must consist of'),
    ("app=we$b", 'values[0]: Invalid value: "we$b": a valid label must be an empty string'),
    ("Example.COM/x=1", "prefix part a lowercase RFC 1123 subdomain"),
    ("a/b/c=1", "at most one '/'"),
    ("x" * 64 + "=1", "no more than 63 characters"),
    ("app=" + "v" * 64, "no more than 63 characters"),
    ("replicas>three", "the value must be an integer"),
    ("replicas>", "the value must be an integer"),
    ("(", "found '(', expected: !, identifier"),
]


@pytest.mark.parametrize("text,message", LABEL_ERRORS, ids=[c[0][:20] for c in LABEL_ERRORS])
def test_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert message in info.value.message


def test_label_selector_renders_canonically() -> None:
    selector = parse_label_selector("tier notin (b,a), !x,app=web, env, r>1")
    assert str(selector) == "app=web,env,r>1,tier notin (a,b),!x"
    assert parse_label_selector(str(selector)) == selector
    assert parse_label_selector("").empty and not selector.empty


def test_label_selector_from_dict_and_set() -> None:
    selector = label_selector_from_dict(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
            ],
        }
    )
    assert selector.matches(LABELS)
    assert not selector.matches({**LABELS, "legacy": "1"})
    assert label_selector_from_dict({}).matches({}) and label_selector_from_dict({}).empty
    assert not label_selector_from_dict(None).matches(LABELS)
    assert label_selector_from_set({"app": "web", "tier": "front"}).matches(LABELS)
    assert not label_selector_from_set({"app": "web", "tier": "back"}).matches(LABELS)


@pytest.mark.parametrize(
    "expression,message",
    [
        (
            {"key": "a", "operator": "Equals", "values": ["x"]},
            '"Equals" is not a valid label selector operator',
        ),
        ({"key": "a", "operator": "In", "values": []}, "values set can't be empty"),
        ({"key": "a", "operator": "Exists", "values": ["x"]}, "values set must be empty"),
        ({"key": "a$", "operator": "Exists"}, "name part must consist of"),
    ],
)
def test_label_selector_from_dict_errors(expression: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError, match=message):
        label_selector_from_dict({"matchExpressions": [expression]})


POD = {
    "kind": "Pod",
    "metadata": {"name": "p1", "namespace": "ns1"},
    "spec": {"nodeName": "node1", "serviceAccountName": "default", "restartPolicy": "Always"},
    "status": {"phase": "Running", "podIP": "10.0.0.5"},
}

FIELD_CASES = [
    ("", "Pod", True),
    ("metadata.name=p1", "Pod", True),
    ("metadata.name==p1", "Pod", True),
    ("metadata.name!=p1", "Pod", False),
    ("metadata.namespace=ns1,spec.nodeName=node1", "Pod", True),
    ("spec.nodeName=", "Pod", False),
    ("spec.schedulerName=", "Pod", True),
    ("status.phase!=Pending", "Pod", True),
    ("status.podIP=10.0.0.5", "Pod", True),
    ("spec.serviceAccountName=default,spec.restartPolicy=Always", "Pod", True),
    ("spec.hostNetwork=false", "Pod", True),
    ("metadata.name=p1,", "Pod", True),
]


@pytest.mark.parametrize("text,kind,expected", FIELD_CASES, ids=[c[0] or "<empty>" for c in FIELD_CASES])
def test_field_selector_matches(text: str, kind: str, expected: bool) -> None:
    assert parse_field_selector(text, kind).matches(POD) is expected


def test_field_selector_per_kind_fields_and_escapes() -> None:
    node = {"metadata": {"name": "n1"}, "spec": {}}
    assert parse_field_selector("spec.unschedulable=false", "Node").matches(node)
    assert not parse_field_selector("spec.unschedulable=false", "Node").matches(
        {"spec": {"unschedulable": True}}
    )
    assert parse_field_selector("type=kubernetes.io/tls", "Secret").matches({"type": "kubernetes.io/tls"})
    assert parse_field_selector(
        "spec.signerName=kubernetes.io/kubelet-serving", "CertificateSigningRequest"
    ).matches({"spec": {"signerName": "kubernetes.io/kubelet-serving"}})
    event = {"involvedObject": {"kind": "Pod", "name": "p1"}, "reason": "Started"}
    assert parse_field_selector(
        "involvedObject.kind=Pod,involvedObject.name=p1,reason=Started", "Event"
    ).matches(event)
    assert parse_field_selector(r"metadata.name=a\,b\=c\\d").matches({"metadata": {"name": r"a,b=c\d"}})
    assert parse_field_selector("metadata.name=p3", "Pod").exact("metadata.name") == "p3"
    assert parse_field_selector("metadata.name!=p3", "Pod").exact("metadata.name") is None
    assert field_value("Node", node, "spec.unschedulable") == "false"


@pytest.mark.parametrize(
    "text,kind,message",
    [
        ("spec.nodeName=x", "Node", "field label not supported: spec.nodeName"),
        ("spec.foo=x", "Pod", "field label not supported: spec.foo"),
        ("status.phase=Running", "", "field label not supported: status.phase"),
        ("metadata.name", "Pod", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        (r"metadata.name=a\x", "Pod", r"invalid escape sequence: \x"),
        ("metadata.name=a\\", "Pod", "invalid escape sequence: \\"),
        ("metadata.name=a=b", "Pod", "unescaped character in value: ="),
    ],
)
def test_field_selector_errors(text: str, kind: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text, kind)
    assert message in info.value.message


SELECTOR_TEXT = st.text(alphabet=st.sampled_from(list("ab=!,() <>in/.-_\\x$notin09")), max_size=40)


@settings(max_examples=1000)
@given(SELECTOR_TEXT | st.text(max_size=30))
def test_label_parser_raises_only_selector_error(text: str) -> None:
    try:
        selector = parse_label_selector(text)
    except SelectorError:
        return
    assert parse_label_selector(str(selector)) == selector  # canonical form re-parses to the same
    selector.matches(LABELS)


@settings(max_examples=1000)
@given(SELECTOR_TEXT | st.text(max_size=30), st.sampled_from(["Pod", "Node", "Event", ""]))
def test_field_parser_raises_only_selector_error(text: str, kind: str) -> None:
    try:
        parse_field_selector(text, kind).matches(POD)
    except SelectorError:
        pass


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(["In", "NotIn", "Exists", "a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=500)
@given(
    st.dictionaries(st.sampled_from(["key", "operator", "values"]), ANY_JSON),
    st.dictionaries(st.sampled_from(["matchLabels", "matchExpressions"]), ANY_JSON),
)
def test_label_selector_from_dict_raises_only_selector_error(
    expression: dict[str, Any], selector: dict[str, Any]
) -> None:
    for candidate in ({"matchLabels": {"a": "b"}, "matchExpressions": [expression]}, selector):
        try:
            label_selector_from_dict(candidate)
        except SelectorError:
            pass
