"""TLS bootstrapping pieces: the CSR the kubelet sends, how it reads the answer, and the files it keeps."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from minikubelet.bootstrap import (
    BootstrapError,
    CertStore,
    client_usages,
    csr_object,
    csr_outcome,
    digested_name,
    ensure_self_signed,
    kubeconfig_is_valid,
    rotation_deadline,
    serving_usages,
    write_bootstrapped_kubeconfig,
)
from pki.certs import issue_cert, make_ca, make_csr, make_key
from pki.files import read_client_config
from pki.kubeconfig import ClientCertData, ClientConfig
from pki.pem import dump_cert_pem
from pki.signer import KUBE_APISERVER_CLIENT_KUBELET, sign_csr

CA = make_ca(key_type="ec")


def test_client_csr_content_is_what_the_signer_accepts() -> None:
    key = make_key("ec")
    usages = client_usages(key)
    assert usages == ["digital signature", "client auth"]
    pem = make_csr(key, "system:node:node9", ["system:nodes"])
    csr = x509.load_pem_x509_csr(pem)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:node9"
    assert [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:nodes"]
    cert = x509.load_pem_x509_certificate(sign_csr(pem, *CA, signer_name=KUBE_APISERVER_CLIENT_KUBELET,
                                                   usages=usages))
    assert cert.subject == csr.subject
    obj = csr_object(pem, KUBE_APISERVER_CLIENT_KUBELET, usages, name=digested_name(key, "system:node:node9",
                                                                                    ["system:nodes"], usages))
    assert obj["spec"] == {"request": base64.b64encode(pem).decode(), "signerName": KUBE_APISERVER_CLIENT_KUBELET,
                           "usages": ["digital signature", "client auth"]}
    assert obj["metadata"]["name"].startswith("node-csr-") and obj["apiVersion"] == "certificates.k8s.io/v1"
    assert csr_object(pem, "x", usages)["metadata"] == {"generateName": "csr-"}


def test_rsa_keys_add_key_encipherment() -> None:
    rsa = make_key("rsa")
    assert client_usages(rsa) == ["digital signature", "client auth", "key encipherment"]
    assert serving_usages(rsa) == ["digital signature", "key encipherment", "server auth"]
    assert serving_usages(make_key("ec")) == ["digital signature", "server auth"]


def test_digested_name_is_the_kubelets_algorithm() -> None:
    """sha512/256 over base64url(PKIX key)|CN|O...|usages...|, base64url without padding."""
    key = make_key("ec")
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    h = hashes.Hash(hashes.SHA512_256())
    for part in (der, b"system:node:n1", b"system:nodes", b"digital signature", b"client auth"):
        h.update(base64.urlsafe_b64encode(part).rstrip(b"=") + b"|")
    expect = "node-csr-" + base64.urlsafe_b64encode(h.finalize()).rstrip(b"=").decode()
    usages = ["digital signature", "client auth"]
    assert digested_name(key, "system:node:n1", ["system:nodes"], usages) == expect
    assert len(expect) == len("node-csr-") + 43
    assert digested_name(key, "system:node:n1", ["system:nodes"], usages[::-1]) != expect
    assert digested_name(make_key("ec"), "system:node:n1", ["system:nodes"], usages) != expect


def csr(conditions: list[dict[str, str]], cert: bytes = b"", uid: str = "u1") -> dict[str, object]:
    status: dict[str, object] = {"conditions": conditions}
    if cert:
        status["certificate"] = base64.b64encode(cert).decode()
    return {"metadata": {"name": "node-csr-x", "uid": uid}, "status": status}


def test_csr_outcome() -> None:
    approved = {"type": "Approved", "status": "True", "reason": "AutoApproved", "message": "ok"}
    assert csr_outcome(csr([]), "u1") is None
    assert csr_outcome(csr([approved]), "u1") is None  # approved, not yet issued
    assert csr_outcome(csr([approved], b"PEM"), "u1") == b"PEM"
    with pytest.raises(BootstrapError, match="denied, reason: KubectlDeny, message: no"):
        csr_outcome(csr([{"type": "Denied", "status": "True", "reason": "KubectlDeny", "message": "no"}]), "u1")
    with pytest.raises(BootstrapError, match="failed, reason: SignerValidationFailure"):
        csr_outcome(csr([approved, {"type": "Failed", "reason": "SignerValidationFailure", "message": "m"}]), "u1")
    with pytest.raises(BootstrapError, match="changed UIDs"):
        csr_outcome(csr([approved], b"PEM", uid="other"), "u1")


def test_rotation_deadline_is_70_to_90_percent_of_the_lifetime() -> None:
    key = make_key("ec")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = issue_cert(*CA, key.public_key(), "system:node:n1", client=True, not_before=start,
                      not_after=start + dt.timedelta(seconds=1000))
    assert rotation_deadline(cert, 0.0) == start.timestamp() + 700
    assert rotation_deadline(cert, 0.999999) == pytest.approx(start.timestamp() + 900, abs=0.01)


def test_cert_store_writes_a_private_pair_and_flips_the_symlink(tmp_path: Path) -> None:
    store = CertStore(str(tmp_path), "kubelet-client")
    assert store.current() is None
    key = make_key("ec")
    cert = issue_cert(*CA, key.public_key(), "system:node:n1", client=True)
    path = store.update(dump_cert_pem(cert), key)
    assert path == str(tmp_path / "kubelet-client-current.pem") and os.path.islink(path)
    target = os.path.join(tmp_path, os.readlink(path))
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert os.path.basename(target).startswith("kubelet-client-2")
    current = store.current()
    assert current is not None and current[0].serial_number == cert.serial_number


def test_bootstrapped_kubeconfig_and_validity(tmp_path: Path) -> None:
    key = make_key("ec")
    store = CertStore(str(tmp_path), "kubelet-client")
    pem_path = store.update(dump_cert_pem(issue_cert(*CA, key.public_key(), "system:node:n1", client=True)), key)
    boot = ClientConfig("https://127.0.0.1:6443", dump_cert_pem(CA[0]), None, "tls-bootstrap-token-user", None)
    kubeconfig = str(tmp_path / "kubelet.conf")
    assert not kubeconfig_is_valid(kubeconfig)
    write_bootstrapped_kubeconfig(boot, kubeconfig, pem_path)
    assert os.stat(kubeconfig).st_mode & 0o777 == 0o600 and kubeconfig_is_valid(kubeconfig)
    cfg = read_client_config(Path(kubeconfig))
    assert cfg.server == "https://127.0.0.1:6443" and cfg.ca_pem == dump_cert_pem(CA[0])
    assert isinstance(cfg.credential, ClientCertData) and b"PRIVATE KEY" in cfg.credential.key_pem
    expired = issue_cert(*CA, key.public_key(), "system:node:n1", client=True,
                         not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
                         not_after=dt.datetime(2020, 1, 2, tzinfo=dt.UTC))
    store.update(dump_cert_pem(expired), key)
    assert not kubeconfig_is_valid(kubeconfig)


def test_self_signed_serving_cert_like_the_kubelet(tmp_path: Path) -> None:
    crt, key = ensure_self_signed(str(tmp_path), "node1")
    assert ensure_self_signed(str(tmp_path), "node1") == (crt, key)  # made once
    certs = x509.load_pem_x509_certificates(Path(crt).read_bytes())
    leaf, ca = certs
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(cn, str) and cn.startswith("node1@") and int(cn.split("@")[1]) <= time.time()
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.startswith("node1-ca@")
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == ["node1"]
    assert os.stat(key).st_mode & 0o777 == 0o600
