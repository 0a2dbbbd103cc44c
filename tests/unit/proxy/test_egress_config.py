"""--egress-selector-config-file: parsing, validation messages, and which dialer the flags choose."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from miniapi.config import Config
from miniapi.proxy.dialer import DirectDialer
from miniapi.proxy.egress import Connection, EgressConfigError, HTTPConnectDialer, load, parse
from miniapi.proxy.network import build_dialer

DOCS_EXAMPLE = """\
apiVersion: apiserver.k8s.io/v1beta1
kind: EgressSelectorConfiguration
egressSelections:
# Since we want to control the egress traffic to the cluster, we use the
# "cluster" as the name. Other supported values are "etcd", and "controlplane".
- name: cluster
  connection:
    # This controls the protocol between the API Server and the Konnectivity
    # server. Supported values are "GRPC" and "HTTPConnect".
    proxyProtocol: HTTPConnect
    transport:
      uds:
        udsName: /etc/kubernetes/konnectivity-server/konnectivity-server.socket
"""


def doc(*selections: dict[str, Any], version: str = "apiserver.k8s.io/v1beta1") -> dict[str, Any]:
    return {"apiVersion": version, "kind": "EgressSelectorConfiguration", "egressSelections": list(selections)}


def test_the_setup_konnectivity_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "egress.yaml"
    path.write_text(DOCS_EXAMPLE)
    assert load(str(path)) == {"cluster": Connection(
        "HTTPConnect", uds_name="/etc/kubernetes/konnectivity-server/konnectivity-server.socket")}


def test_tcp_with_tls_and_the_other_selections(tmp_path: Path) -> None:
    for name in ("ca.crt", "c.crt", "c.key"):
        (tmp_path / name).write_text("x")
    got = parse(doc({"name": "master", "connection": {"proxyProtocol": "Direct"}},
                    {"name": "cluster", "connection": {"proxyProtocol": "HTTPConnect", "transport": {"tcp": {
                        "url": "https://127.0.0.1:8131", "tlsConfig": {
                            "caBundle": str(tmp_path / "ca.crt"), "clientCert": str(tmp_path / "c.crt"),
                            "clientKey": str(tmp_path / "c.key")}}}}}, version="apiserver.k8s.io/v1alpha1"))
    assert got["controlplane"] == Connection("Direct")  # v1alpha1's "master" is "controlplane"
    assert got["cluster"].url == "https://127.0.0.1:8131" and got["cluster"].client_key.endswith("c.key")


@pytest.mark.parametrize(("document", "message"), [
    pytest.param({"kind": "Foo"}, 'expected kind "EgressSelectorConfiguration"', id="kind"),
    pytest.param(doc({"name": "nodes", "connection": {"proxyProtocol": "Direct"}}),
                 'egressSelections\\[0\\].name: Unsupported value: "nodes"', id="name"),
    pytest.param(doc({"name": "cluster", "connection": {"proxyProtocol": "Direct"}},
                     {"name": "cluster", "connection": {"proxyProtocol": "Direct"}}),
                 'egressSelections\\[1\\].name: Duplicate value: "cluster"', id="duplicate"),
    pytest.param(doc({"name": "cluster", "connection": {"proxyProtocol": "SOCKS"}}),
                 'proxyProtocol: Unsupported value: "SOCKS"', id="protocol"),
    pytest.param(doc({"name": "cluster", "connection": {"proxyProtocol": "HTTPConnect"}}),
                 "transport: Required value: exactly one of tcp or uds", id="no-transport"),
    pytest.param(doc({"name": "cluster", "connection": {"proxyProtocol": "Direct", "transport": {"uds": {
        "udsName": "/x"}}}}), "transport: Forbidden: transport must be empty for Direct", id="direct-transport"),
    pytest.param(doc({"name": "cluster", "connection": {"proxyProtocol": "GRPC", "transport": {"uds": {
        "udsName": "/x"}}}}), "GRPC is not implemented by miniapi", id="grpc"),
    pytest.param(doc({"name": "cluster", "connection": {"proxyProtocol": "HTTPConnect", "transport": {"tcp": {
        "url": "127.0.0.1:8131"}}}}), 'tcp.url: Invalid value: "127.0.0.1:8131"', id="url"),
    pytest.param(doc({"name": "cluster", "connection": {"proxyProtocol": "HTTPConnect", "transport": {"tcp": {
        "url": "https://x", "tlsConfig": {"caBundle": "/nonexistent/ca.crt"}}}}}),
        'tlsConfig.caBundle: Invalid value: "/nonexistent/ca.crt": no such file', id="missing-file"),
])
def test_invalid_files_are_refused_with_the_field(document: dict[str, Any], message: str) -> None:
    with pytest.raises(EgressConfigError, match=message):
        parse(document)


def test_flow_style_yaml_is_refused_readably(tmp_path: Path) -> None:
    path = tmp_path / "egress.yaml"
    path.write_text(DOCS_EXAMPLE.replace("      uds:\n        udsName: /etc/kubernetes/konnectivity-server/"
                                             "konnectivity-server.socket", "      uds: {udsName: /x}"))
    with pytest.raises(EgressConfigError, match="cannot read"):
        load(str(path))


def test_the_flags_choose_the_dialer(tmp_path: Path) -> None:
    path = tmp_path / "egress.yaml"
    path.write_text(DOCS_EXAMPLE)
    assert isinstance(build_dialer(Config()), DirectDialer)
    assert isinstance(build_dialer(replace(Config(), egress_selector_config_file=str(path))), HTTPConnectDialer)
    path.write_text(DOCS_EXAMPLE.replace("name: cluster", "name: etcd"))
    assert isinstance(build_dialer(replace(Config(), egress_selector_config_file=str(path))), DirectDialer)
