"""``python -m pki`` smoke tests, run as a learner would run them: a subprocess and its output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pki.certinfo import chains_to, describe
from pki.certs import make_csr, make_key
from pki.files import read_cert
from pki.pem import load_cert_pem

REPO = Path(__file__).resolve().parents[3]


def minipki(*args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "pki", *args], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == expect, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "pki"
    out = minipki(
        "init",
        "--dir",
        str(root),
        "--key-type",
        "ec",
        "--node",
        "node1=127.0.0.1",
        "--node",
        "node2",
        "--apiserver-cert-extra-sans",
        "apiserver,10.0.0.5",
        "--service-cidr",
        "10.32.0.0/24",
    ).stdout
    assert "[pki] wrote pki/ca.crt" in out and "0 kept" in out
    return root


def test_init_is_idempotent(pki_dir: Path) -> None:
    out = minipki(
        "init",
        "--dir",
        str(pki_dir),
        "--node",
        "node1=127.0.0.1",
        "--node",
        "node2",
        "--apiserver-cert-extra-sans",
        "apiserver",
        "--apiserver-cert-extra-sans",
        "10.0.0.5",
        "--service-cidr",
        "10.32.0.0/24",
    ).stdout
    assert "[pki] using existing pki/ca.crt" in out and "0 files written" in out


def test_init_default_is_rsa_and_node1(tmp_path: Path) -> None:
    minipki("init", "--dir", str(tmp_path))
    assert describe(read_cert(tmp_path / "pki/ca.crt")).public_key == "RSA 2048"
    assert describe(read_cert(tmp_path / "nodes/node1/pki/kubelet.crt")).dns_names == ("node1",)


def test_inspect_a_certificate(pki_dir: Path) -> None:
    out = minipki("inspect", str(pki_dir / "pki/apiserver.crt"), "--ca", str(pki_dir / "pki/ca.crt")).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines())
    assert fields["subject"].strip() == "CN=kube-apiserver"
    assert fields["issuer"].strip() == "CN=kubernetes"
    assert "apiserver" in fields["DNS names"] and "10.32.0.1, 127.0.0.1, 10.0.0.5" in fields["IP addresses"]
    assert fields["ext key usages"].strip() == "server auth"
    assert re.search(r"\(36[45]d left\)", fields["not after"])
    assert fields["chains to CA"].strip() == "yes"


def test_inspect_a_kubeconfig_against_the_wrong_ca(pki_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    minipki("init", "--dir", str(other), "--key-type", "ec")
    out = minipki("inspect", str(pki_dir / "admin.conf"), "--ca", str(other / "pki/ca.crt")).stdout
    assert "CN=kubernetes-admin,O=system:masters" in out
    assert re.search(r"chains to CA:\s+no", out)


def test_check_expiration_table(pki_dir: Path) -> None:
    lines = minipki("check-expiration", "--dir", str(pki_dir)).stdout.splitlines()
    assert re.split(r"\s{3,}", lines[0]) == [
        "CERTIFICATE",
        "EXPIRES",
        "RESIDUAL TIME",
        "CERTIFICATE AUTHORITY",
    ]
    rows = {re.split(r"\s{3,}", line)[0]: re.split(r"\s{3,}", line) for line in lines[1:] if line}
    for name in [
        "admin.conf",
        "apiserver",
        "apiserver-kubelet-client",
        "controller-manager.conf",
        "node1/kubelet-client",
        "node1/kubelet",
        "node2/kubelet",
    ]:
        assert re.fullmatch(r"[A-Z][a-z]{2} \d\d, \d{4} \d\d:\d\d UTC", rows[name][1]), rows[name]
        assert re.fullmatch(r"36[45]d", rows[name][2]) and rows[name][3] == "ca"
    assert rows["ca"][2] in ("9y", "10y")


def test_kubeconfig_for_a_new_user(pki_dir: Path, tmp_path: Path, kubectl: Callable[..., str]) -> None:
    out = tmp_path / "bob.conf"
    minipki(
        "kubeconfig",
        "--dir",
        str(pki_dir),
        "--user",
        "bob",
        "--group",
        "dev",
        "--group",
        "ops",
        "--server",
        "https://10.0.0.5:6443",
        "-o",
        str(out),
        "--key-type",
        "ec",
    )
    view = json.loads(kubectl("--kubeconfig", str(out), "config", "view", "--raw", "-o", "json"))
    assert view["current-context"] == "bob@kubernetes"
    assert view["clusters"][0]["cluster"]["server"] == "https://10.0.0.5:6443"
    info = minipki("inspect", str(out)).stdout
    assert "CN=bob,O=ops,O=dev" in info


def test_sign_csr(pki_dir: Path, tmp_path: Path) -> None:
    csr = tmp_path / "req.pem"
    csr.write_bytes(make_csr(make_key("ec"), "system:node:node9", ["system:nodes"]))
    cert_path = tmp_path / "cert.pem"
    minipki(
        "sign-csr",
        str(csr),
        "--dir",
        str(pki_dir),
        "--signer-name",
        "kubernetes.io/kube-apiserver-client-kubelet",
        "--expiration-seconds",
        "3600",
        "-o",
        str(cert_path),
    )
    cert = load_cert_pem(cert_path.read_bytes())
    assert chains_to(cert, read_cert(pki_dir / "pki/ca.crt"))
    assert describe(cert).extended_usages == ("client auth",)
    refused = minipki(
        "sign-csr",
        str(csr),
        "--dir",
        str(pki_dir),
        "--signer-name",
        "kubernetes.io/kubelet-serving",
        expect=1,
    )
    assert refused.stderr.strip() == (
        "minipki: error: SignerValidationFailure: DNS or IP subjectAltName is required"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inspect", "{garbage}"], "holds neither a PEM certificate"),
        (["inspect", "{bad_pem}"], "malformed certificate PEM"),
        (["inspect", "{tmp}/missing.crt"], "No such file"),
        (["check-expiration", "--dir", "{tmp}"], "no CA at"),
        (
            ["init", "--dir", "{tmp}/x", "--service-cidr", "nope", "--key-type", "ec"],
            "invalid --service-cidr",
        ),
        (["init", "--dir", "{tmp}/x", "--node", "n1=1.2.3", "--key-type", "ec"], "not an IP address"),
        (["sign-csr", "{garbage}", "--dir", "{tmp}"], "No such file"),
    ],
    ids=[
        "inspect-garbage",
        "inspect-bad-pem",
        "inspect-missing",
        "expiration-empty-dir",
        "bad-cidr",
        "bad-node-ip",
        "sign-csr-no-ca",
    ],
)
def test_user_errors_are_one_line_and_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "garbage").write_text("hello\n")
    (tmp_path / "bad.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    subs = {"garbage": str(tmp_path / "garbage"), "bad_pem": str(tmp_path / "bad.pem"), "tmp": str(tmp_path)}
    proc = minipki(*(a.format(**subs) for a in args), expect=1)
    assert proc.stderr.startswith("minipki: error: ") and proc.stderr.count("\n") == 1
    assert message in proc.stderr
