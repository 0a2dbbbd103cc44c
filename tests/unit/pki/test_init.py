"""init_pki: every certificate's identity and SANs, file modes, idempotence, and refusing foreign files."""

from __future__ import annotations

import json
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pki.certinfo import chains_to, describe
from pki.certs import issue_cert, make_ca, make_key
from pki.errors import PkiError
from pki.files import read_cert, read_client_config, read_key, write_cert, write_key
from pki.init import init_pki
from pki.kubeconfig import ClientCertData, Token
from pki.pem import dump_public_key_pem, load_cert_pem, load_key_pem
from pki.tokens import BOOTSTRAP_TOKEN_RE, parse_token_csv

URL = "https://apiserver.lab:6443"
OPTIONS = dict(
    apiserver_url=URL,
    extra_sans=("api.example", "192.168.1.10"),
    nodes=("node1", "node2"),
    node_ips={"node1": "10.0.0.11"},
    key_type="ec",
)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    init_pki(root, **OPTIONS)  # type: ignore[arg-type]
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(src, dst)
    return dst


PRIVATE = [
    "pki/ca.key",
    "pki/apiserver.key",
    "pki/apiserver-kubelet-client.key",
    "pki/sa.key",
    "admin.conf",
    "controller-manager.conf",
    "kube-proxy.conf",
    "bootstrap-kubelet.conf",
    "bootstrap-token",
    "tokens.csv",
    "nodes/node1/kubelet.conf",
    "nodes/node1/pki/kubelet-client-current.pem",
    "nodes/node1/pki/kubelet.key",
]
PUBLIC = [
    "pki/ca.crt",
    "pki/apiserver.crt",
    "pki/apiserver-kubelet-client.crt",
    "pki/sa.pub",
    "nodes/node1/pki/ca.crt",
    "nodes/node1/pki/kubelet.crt",
]


def test_every_file_exists_with_kubeadm_modes(pki_dir: Path) -> None:
    for name in PRIVATE:
        assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o600, name
    for name in PUBLIC:
        assert stat.S_IMODE((pki_dir / name).stat().st_mode) == 0o644, name
    assert set(_snapshot(pki_dir)) == set(PRIVATE + PUBLIC) | {
        n.replace("node1", "node2") for n in PRIVATE + PUBLIC if "node1" in n
    }


APISERVER_DNS = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "localhost",
    "apiserver.lab",
    "api.example",
)
IDENTITIES = {
    # file: (CN, O, extended usages, DNS SANs, IP SANs)
    "pki/apiserver.crt": (
        "kube-apiserver",
        (),
        ("server auth",),
        APISERVER_DNS,
        ("10.96.0.1", "127.0.0.1", "192.168.1.10"),
    ),
    "pki/apiserver-kubelet-client.crt": (
        "kube-apiserver-kubelet-client",
        ("system:masters",),
        ("client auth",),
        (),
        (),
    ),
    "admin.conf": ("kubernetes-admin", ("system:masters",), ("client auth",), (), ()),
    "controller-manager.conf": ("system:kube-controller-manager", (), ("client auth",), (), ()),
    "kube-proxy.conf": ("system:kube-proxy", (), ("client auth",), (), ()),
    "nodes/node1/kubelet.conf": ("system:node:node1", ("system:nodes",), ("client auth",), (), ()),
    "nodes/node1/pki/kubelet.crt": (
        "system:node:node1",
        ("system:nodes",),
        ("server auth",),
        ("node1",),
        ("10.0.0.11",),
    ),
    "nodes/node2/pki/kubelet.crt": ("system:node:node2", ("system:nodes",), ("server auth",), ("node2",), ()),
}


@pytest.mark.parametrize(("name", "expected"), IDENTITIES.items(), ids=IDENTITIES.keys())
def test_identities_usages_and_sans(pki_dir: Path, name: str, expected: tuple[object, ...]) -> None:
    path = pki_dir / name
    if path.suffix == ".conf":
        credential = read_client_config(path).credential
        assert isinstance(credential, ClientCertData)
        cert = load_cert_pem(credential.cert_pem)
    else:
        cert = read_cert(path)
    info = describe(cert)
    assert (
        info.common_name,
        info.organizations,
        info.extended_usages,
        info.dns_names,
        info.ip_addresses,
    ) == expected
    assert chains_to(cert, read_cert(pki_dir / "pki/ca.crt"))
    assert info.key_usages == ("digital signature",) and not info.is_ca


def test_keys_match_certificates(pki_dir: Path) -> None:
    for crt, key in [
        ("pki/ca.crt", "pki/ca.key"),
        ("pki/apiserver.crt", "pki/apiserver.key"),
        ("nodes/node1/pki/kubelet-client-current.pem",) * 2,
    ]:
        public = read_cert(pki_dir / crt).public_key()
        assert dump_public_key_pem(public) == dump_public_key_pem(read_key(pki_dir / key))
    sa_pub = (pki_dir / "pki/sa.pub").read_bytes()
    assert sa_pub.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert sa_pub == dump_public_key_pem(load_key_pem((pki_dir / "pki/sa.key").read_bytes()))
    assert (pki_dir / "nodes/node1/pki/ca.crt").read_bytes() == (pki_dir / "pki/ca.crt").read_bytes()


def test_tokens(pki_dir: Path) -> None:
    token = (pki_dir / "bootstrap-token").read_text().strip()
    assert BOOTSTRAP_TOKEN_RE.fullmatch(token)
    bootstrap = read_client_config(pki_dir / "bootstrap-kubelet.conf")
    assert (bootstrap.user, bootstrap.credential, bootstrap.server) == (
        "tls-bootstrap-token-user",
        Token(token),
        URL,
    )
    users = {t.user: t.groups for t in parse_token_csv((pki_dir / "tokens.csv").read_text())}
    assert users == {"admin": ("system:masters",), "alice": ("developers",)}


def test_kubectl_accepts_every_kubeconfig(pki_dir: Path, kubectl: Callable[..., str]) -> None:
    for name in [
        "admin.conf",
        "controller-manager.conf",
        "bootstrap-kubelet.conf",
        "nodes/node2/kubelet.conf",
    ]:
        out = kubectl(
            "--kubeconfig", str(pki_dir / name), "config", "view", "--raw", "--flatten", "-o", "json"
        )
        view = json.loads(out)
        assert view["clusters"][0]["cluster"]["server"] == URL, name
        assert view["current-context"].endswith("@kubernetes")


def test_rerun_changes_nothing(pki_dir: Path, tmp_path: Path) -> None:
    root = _copy(pki_dir, tmp_path)
    before = _snapshot(root)
    result = init_pki(root, **OPTIONS)  # type: ignore[arg-type]
    assert result.created == () and len(result.kept) == len(before)
    assert _snapshot(root) == before


def test_rerun_fills_in_only_what_is_missing(pki_dir: Path, tmp_path: Path) -> None:
    root = _copy(pki_dir, tmp_path)
    before = _snapshot(root)
    (root / "nodes/node2/pki/kubelet.key").unlink()
    (root / "admin.conf").unlink()
    result = init_pki(root, **{**OPTIONS, "nodes": ("node1", "node2", "node3")})  # type: ignore[arg-type]
    created = sorted(str(p.relative_to(root)) for p in result.created)
    assert created == sorted(
        [
            "admin.conf",
            "nodes/node2/pki/kubelet.crt",
            "nodes/node2/pki/kubelet.key",
            "nodes/node3/kubelet.conf",
            "nodes/node3/pki/ca.crt",
            "nodes/node3/pki/kubelet-client-current.pem",
            "nodes/node3/pki/kubelet.crt",
            "nodes/node3/pki/kubelet.key",
        ]
    )
    after = _snapshot(root)
    assert after["pki/ca.key"] == before["pki/ca.key"] and after["pki/ca.crt"] == before["pki/ca.crt"]
    assert chains_to(read_cert(root / "nodes/node3/pki/kubelet.crt"), read_cert(root / "pki/ca.crt"))


def test_force_replaces_everything_the_ca_included(pki_dir: Path, tmp_path: Path) -> None:
    root = _copy(pki_dir, tmp_path)
    before = _snapshot(root)
    result = init_pki(root, **OPTIONS, force=True)  # type: ignore[arg-type]
    after = _snapshot(root)
    assert result.kept == () and set(after) == set(before)
    assert all(after[name] != before[name] for name in after)


def _foreign_apiserver(root: Path) -> None:
    """An apiserver pair from another CA named CN=kubernetes too: only the signature differs."""
    ca_cert, ca_key = make_ca(key_type="ec")
    key = make_key("ec")
    write_cert(
        root / "pki/apiserver.crt",
        issue_cert(ca_cert, ca_key, key.public_key(), "kube-apiserver", server=True),
    )
    write_key(root / "pki/apiserver.key", key)


REFUSALS = {
    "foreign-apiserver-cert": (lambda root: _foreign_apiserver(root), {}, "apiserver.crt is not signed by"),
    "ca-key-missing": (lambda root: (root / "pki/ca.key").unlink(), {}, "found .*ca.crt but not .*ca.key"),
    "ca-key-mismatch": (lambda root: write_key(root / "pki/ca.key", make_key("ec")), {}, "does not match"),
    "new-sans": (lambda root: None, {"extra_sans": ("new.example",)}, "lacks the SANs new.example"),
    "new-server-port": (lambda root: None, {"apiserver_url": "https://apiserver.lab:7443"}, "points at"),
    "bad-service-cidr": (lambda root: None, {"service_cidr": "10.96.0.0/99"}, "invalid --service-cidr"),
    "bad-node-ip": (lambda root: None, {"node_ips": {"node1": "not-an-ip"}}, "not an IP address"),
}


@pytest.mark.parametrize(("damage", "options", "message"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refuses_inconsistent_directories(
    pki_dir: Path, tmp_path: Path, damage: Callable[[Path], object], options: dict[str, object], message: str
) -> None:
    root = _copy(pki_dir, tmp_path)
    damage(root)
    with pytest.raises(PkiError, match=message):
        init_pki(root, **{**OPTIONS, **options})  # type: ignore[arg-type]


def test_service_cidr_picks_the_vip_and_rsa_is_the_default(tmp_path: Path) -> None:
    init_pki(tmp_path, service_cidr="10.100.0.0/16,fd00::/108", nodes=())
    cert = read_cert(tmp_path / "pki/apiserver.crt")
    info = describe(cert)
    assert info.ip_addresses[:3] == ("10.100.0.1", "fd00::1", "127.0.0.1")
    assert isinstance(read_key(tmp_path / "pki/ca.key"), rsa.RSAPrivateKey)
    assert (info.public_key, info.key_usages) == ("RSA 2048", ("digital signature", "key encipherment"))
