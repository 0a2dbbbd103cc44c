"""Kubeconfigs: the shape, and that the real kubectl reads them back field for field."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pki.certs import issue_cert, make_key
from pki.errors import PkiError
from pki.files import read_client_config, write_kubeconfig
from pki.kubeconfig import (
    ClientCertData,
    ClientCertFiles,
    Credential,
    Token,
    build_kubeconfig,
    client_config,
    dump_kubeconfig,
    load_kubeconfig,
)
from pki.pem import dump_cert_pem, dump_key_pem

from .conftest import CA

SERVER = "https://127.0.0.1:6443"


@pytest.fixture(scope="module")
def admin_credential(ec_ca: CA) -> ClientCertData:
    key = make_key("ec")
    cert = issue_cert(
        ec_ca[0], ec_ca[1], key.public_key(), "kubernetes-admin", ["system:masters"], client=True
    )
    return ClientCertData(dump_cert_pem(cert), dump_key_pem(key))


def _write(tmp_path: Path, ca: CA, user: str, credential: Credential) -> Path:
    config = build_kubeconfig(server=SERVER, ca_pem=dump_cert_pem(ca[0]), user=user, credential=credential)
    path = tmp_path / "test.conf"
    write_kubeconfig(path, config)
    return path


def test_kubectl_reads_a_client_certificate_kubeconfig(
    tmp_path: Path, ec_ca: CA, admin_credential: ClientCertData, kubectl: Callable[..., str]
) -> None:
    path = _write(tmp_path, ec_ca, "kubernetes-admin", admin_credential)
    view = json.loads(kubectl("--kubeconfig", str(path), "config", "view", "--raw", "-o", "json"))
    assert (view["apiVersion"], view["kind"]) == ("v1", "Config")
    assert view["current-context"] == "kubernetes-admin@kubernetes"
    [cluster] = view["clusters"]
    assert cluster["name"] == "kubernetes" and cluster["cluster"]["server"] == SERVER
    assert base64.b64decode(cluster["cluster"]["certificate-authority-data"]) == dump_cert_pem(ec_ca[0])
    [context] = view["contexts"]
    assert context == {
        "name": "kubernetes-admin@kubernetes",
        "context": {"cluster": "kubernetes", "user": "kubernetes-admin"},
    }
    [user] = view["users"]
    assert user["name"] == "kubernetes-admin"
    assert base64.b64decode(user["user"]["client-certificate-data"]) == admin_credential.cert_pem
    assert base64.b64decode(user["user"]["client-key-data"]) == admin_credential.key_pem


def test_kubectl_get_contexts(
    tmp_path: Path, ec_ca: CA, admin_credential: ClientCertData, kubectl: Callable[..., str]
) -> None:
    path = _write(tmp_path, ec_ca, "kubernetes-admin", admin_credential)
    lines = kubectl("--kubeconfig", str(path), "config", "get-contexts").splitlines()
    assert lines[0].split() == ["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]
    assert lines[1].split() == ["*", "kubernetes-admin@kubernetes", "kubernetes", "kubernetes-admin"]


def test_kubectl_reads_a_token_kubeconfig(tmp_path: Path, ec_ca: CA, kubectl: Callable[..., str]) -> None:
    path = _write(tmp_path, ec_ca, "tls-bootstrap-token-user", Token("abcdef.0123456789abcdef"))
    view = json.loads(kubectl("--kubeconfig", str(path), "config", "view", "--raw", "-o", "json"))
    assert view["users"] == [
        {"name": "tls-bootstrap-token-user", "user": {"token": "abcdef.0123456789abcdef"}}
    ]


def test_relative_certificate_paths_resolve_like_client_go(
    tmp_path: Path, ec_ca: CA, admin_credential: ClientCertData, kubectl: Callable[..., str]
) -> None:
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "client.pem").write_bytes(admin_credential.cert_pem + admin_credential.key_pem)
    path = _write(tmp_path, ec_ca, "u", ClientCertFiles("pki/client.pem", "pki/client.pem"))
    view = json.loads(
        kubectl("--kubeconfig", str(path), "config", "view", "--raw", "--flatten", "-o", "json")
    )
    embedded = base64.b64decode(view["users"][0]["user"]["client-certificate-data"])
    assert embedded == admin_credential.cert_pem + admin_credential.key_pem
    resolved = read_client_config(path)
    assert resolved.credential == ClientCertData(embedded, embedded)
    assert resolved.ca_pem == dump_cert_pem(ec_ca[0])


def test_we_read_what_kubectl_writes(
    tmp_path: Path, ec_ca: CA, admin_credential: ClientCertData, kubectl: Callable[..., str]
) -> None:
    path = _write(tmp_path, ec_ca, "kubernetes-admin", admin_credential)
    kubectl(
        "--kubeconfig", str(path), "config", "set-context", "other", "--cluster=kubernetes", "--user=nobody"
    )
    text = kubectl("--kubeconfig", str(path), "config", "view", "--raw", "-o", "yaml")
    config = load_kubeconfig(text)
    assert [c["name"] for c in config["contexts"]] == ["kubernetes-admin@kubernetes", "other"]
    assert client_config(config).credential == admin_credential
    assert client_config(load_kubeconfig(path.read_text())).server == SERVER


def test_client_config_picks_the_current_context(ec_ca: CA, admin_credential: ClientCertData) -> None:
    config = build_kubeconfig(server=SERVER, ca_pem=b"CA", user="admin", credential=admin_credential)
    config["contexts"].append({"name": "t", "context": {"cluster": "kubernetes", "user": "tok"}})
    config["users"].append({"name": "tok", "user": {"token": "s3cret"}})
    assert client_config(config).credential == admin_credential
    assert client_config(config, context="t").credential == Token("s3cret")
    assert client_config(config).ca_pem == b"CA"
    with pytest.raises(PkiError, match="no context named 'missing'"):
        client_config(config, context="missing")


@pytest.mark.parametrize(
    "text",
    ["kind: Pod\n", "- a\n", "a: |\n  x\n", "current-context: c\n"],
    ids=["not-config", "a-list", "unsupported-yaml", "missing-context"],
)
def test_bad_kubeconfigs_raise_pki_error(text: str) -> None:
    with pytest.raises(PkiError):
        client_config(load_kubeconfig(text))


def test_bad_base64_raises_pki_error() -> None:
    config = build_kubeconfig(server=SERVER, ca_pem=b"x", user="u", credential=ClientCertData(b"c", b"k"))
    config["users"][0]["user"]["client-key-data"] = "@@not base64@@"
    with pytest.raises(PkiError, match="client-key-data is not valid base64"):
        client_config(config)


def test_dump_is_yaml_text(ec_ca: CA) -> None:
    config = build_kubeconfig(server=SERVER, ca_pem=b"x", user="u", credential=Token("t"))
    text = dump_kubeconfig(config)
    assert text.startswith("apiVersion: v1\nkind: Config\n") and "token: t\n" in text
