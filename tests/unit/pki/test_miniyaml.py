"""The kubeconfig YAML subset: what we write, PyYAML reads identically; what we read, we read right."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pki import miniyaml

KUBECONFIG_TEXT = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: LS0tLS1CRUdJTg==
    server: https://127.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: system:node:node1
  name: system:node:node1@kubernetes
current-context: system:node:node1@kubernetes
preferences: {}
users:
- name: system:node:node1
  user:
    token: abcdef.0123456789abcdef
"""

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [
        {
            "cluster": {"certificate-authority-data": "LS0tLS1CRUdJTg==", "server": "https://127.0.0.1:6443"},
            "name": "kubernetes",
        }
    ],
    "contexts": [
        {
            "context": {"cluster": "kubernetes", "user": "system:node:node1"},
            "name": "system:node:node1@kubernetes",
        }
    ],
    "current-context": "system:node:node1@kubernetes",
    "preferences": {},
    "users": [{"name": "system:node:node1", "user": {"token": "abcdef.0123456789abcdef"}}],
}


def test_dump_writes_kubectl_style_byte_for_byte() -> None:
    assert miniyaml.dump(KUBECONFIG) == KUBECONFIG_TEXT
    assert miniyaml.load(KUBECONFIG_TEXT) == KUBECONFIG


scalars = st.none() | st.booleans() | st.integers() | st.text()
documents = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(documents)
def test_round_trip_and_pyyaml_agrees(doc: Any) -> None:
    text = miniyaml.dump(doc)
    assert miniyaml.load(text) == doc
    assert yaml.safe_load(text) == doc


@pytest.mark.parametrize(
    "value",
    [
        "true",
        "no",
        "Off",
        "null",
        "~",
        "y",
        "123",
        "-1",
        "1.5",
        "0x1F",
        "1e3",
        "2024-01-01",
        "a: b",
        "a:",
        "#x",
        "- x",
        "",
        " lead",
        "trail ",
        "*alias",
        "&anchor",
        "!tag",
        "=",
        "<<",
        "@at",
        "%d",
        "'q'",
        "line\nbreak",
        "tab\there",
        "\u2028",
        "\x85",
        "caf\u00e9",
        "\U0001f600",
        "\ufeffbom",
    ],
)
def test_tricky_strings_stay_strings(value: str) -> None:
    text = miniyaml.dump({"k": value, value: [value]})
    assert miniyaml.load(text) == {"k": value, value: [value]}
    assert yaml.safe_load(text) == {"k": value, value: [value]}


def test_load_reads_what_go_yaml_writes() -> None:
    text = """# written by kubectl
---
apiVersion: v1
clusters:
-   cluster:
        insecure-skip-tls-verify: true
        server: 'https://h:6443'
    name: "it's"
contexts: []
users:
- name: u
  user:
    exec:
      args:
      - --a
      - "b c"
      command: x
"""
    assert miniyaml.load(text) == yaml.safe_load(text)


def test_load_reads_json() -> None:
    assert miniyaml.load('{"kind": "Config", "users": [{"name": "u"}]}') == {
        "kind": "Config",
        "users": [{"name": "u"}],
    }


@pytest.mark.parametrize(
    "text",
    [
        "a: |\n  x\n",
        "a: &x 1\n",
        "a: {b: 1}\n",
        "a:\n\tb: 1\n",
        'a: "open\n',
        'a: "\\q"\n',
        "a: 1\na: 2\n",
        "a: 1\n  b: 2\n",
        "- a\nb: 1\n",
        "a: x # comment\n",
    ],
    ids=[
        "block-scalar",
        "anchor",
        "flow-mapping",
        "tab-indent",
        "unterminated-quote",
        "bad-escape",
        "duplicate-key",
        "bad-indent",
        "sequence-then-key",
        "trailing-comment",
    ],
)
def test_load_refuses_what_it_does_not_understand(text: str) -> None:
    with pytest.raises(ValueError):
        miniyaml.load(text)


def test_dump_refuses_unknown_types() -> None:
    with pytest.raises(TypeError):
        miniyaml.dump({"a": 1.5})
