"""``kubeadm init phase certs`` + ``kubeconfig`` for the lab: one call lays out a whole PKI directory.

The identities (who each certificate says it is) live in :mod:`pki.identities`; the file names and
modes in :mod:`pki.files`. This module decides what to (re)create:

Re-running never replaces the CA: existing files are kept and only missing ones are made. A kept
certificate must chain to the CA and carry the SANs asked for, a kept kubeconfig must name the same
server and CA, else init stops and says what to delete (kubeadm refuses likewise). ``force=True``
regenerates everything, the CA included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from pki.certinfo import chains_to, describe
from pki.certs import KeyType, PrivateKey, issue_cert, make_ca, make_key
from pki.errors import PkiError
from pki.files import (
    Layout,
    read_cert,
    read_client_config,
    read_key,
    write_cert,
    write_cert_and_key,
    write_key,
    write_kubeconfig,
    write_public_key,
    write_secret_text,
)
from pki.identities import (
    ADMIN,
    APISERVER_KUBELET_CLIENT,
    BOOTSTRAP_USER,
    CONTROLLER_MANAGER,
    DEFAULT_APISERVER_URL,
    DEFAULT_SERVICE_CIDR,
    KUBE_PROXY,
    LeafSpec,
    apiserver_spec,
    kubelet_client_spec,
    kubelet_serving_spec,
)
from pki.kubeconfig import ClientCertData, ClientCertFiles, Credential, Token, build_kubeconfig
from pki.pem import dump_cert_pem, dump_key_pem, dump_public_key_pem, load_cert_pem
from pki.tokens import default_static_tokens, make_bootstrap_token, parse_bootstrap_token, render_token_csv


@dataclass(frozen=True)
class InitResult:
    root: Path
    created: tuple[Path, ...]
    kept: tuple[Path, ...]


@dataclass
class _Run:
    layout: Layout
    server: str
    key_type: KeyType
    force: bool
    ca_cert: x509.Certificate | None = None
    ca_key: PrivateKey | None = None
    created: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)

    @property
    def ca(self) -> tuple[x509.Certificate, PrivateKey]:
        assert self.ca_cert is not None and self.ca_key is not None
        return self.ca_cert, self.ca_key


def init_pki(
    directory: str | Path,
    *,
    apiserver_url: str = DEFAULT_APISERVER_URL,
    extra_sans: Iterable[str] = (),
    service_cidr: str = DEFAULT_SERVICE_CIDR,
    nodes: Iterable[str] = ("node1",),
    node_ips: Mapping[str, str] | None = None,
    force: bool = False,
    key_type: KeyType = "rsa",
) -> InitResult:
    """Create (or complete) the PKI directory; see the module docstring for what and why."""
    node_ips = dict(node_ips or {})
    run = _Run(Layout(Path(directory)), apiserver_url, key_type, force)
    run.ca_cert, run.ca_key = _ensure_ca(run)
    pki = run.layout.pki
    apiserver = apiserver_spec(apiserver_url, extra_sans, service_cidr)
    _ensure_pair(run, pki("apiserver.crt"), pki("apiserver.key"), apiserver)
    _ensure_pair(
        run,
        pki("apiserver-kubelet-client.crt"),
        pki("apiserver-kubelet-client.key"),
        APISERVER_KUBELET_CLIENT,
    )
    _ensure_service_account_keys(run)
    _ensure_tokens(run)
    token = _ensure_bootstrap_token(run)
    _ensure_cert_kubeconfig(run, run.layout.admin_conf, ADMIN)
    _ensure_cert_kubeconfig(run, run.layout.controller_manager_conf, CONTROLLER_MANAGER)
    _ensure_cert_kubeconfig(run, run.layout.kube_proxy_conf, KUBE_PROXY)
    _ensure_kubeconfig(run, run.layout.bootstrap_kubelet_conf, BOOTSTRAP_USER, lambda: token, expect=token)
    for name in nodes:
        _ensure_node(run, name, node_ips.get(name))
    return InitResult(run.layout.root, tuple(run.created), tuple(run.kept))


def _ensure_ca(run: _Run) -> tuple[x509.Certificate, PrivateKey]:
    crt, key = run.layout.ca_crt, run.layout.ca_key
    if not run.force and crt.exists() and key.exists():
        cert, ca_key = read_cert(crt), read_key(key)
        if dump_public_key_pem(cert.public_key()) != dump_public_key_pem(ca_key):
            raise PkiError(f"{key} does not match {crt}; restore the right pair or re-run with --force")
        run.kept += [crt, key]
        return cert, ca_key
    if not run.force and (crt.exists() or key.exists()):
        have, missing = (crt, key) if crt.exists() else (key, crt)
        raise PkiError(f"found {have} but not {missing}; restore it, delete both, or re-run with --force")
    cert, ca_key = make_ca(key_type=run.key_type)
    write_key(key, ca_key)
    write_cert(crt, cert)
    run.created += [crt, key]
    return cert, ca_key


def _ensure_pair(run: _Run, crt: Path, key: Path, spec: LeafSpec) -> None:
    if not run.force and crt.exists() and key.exists():
        _check_kept(run, crt, read_cert(crt), read_key(key), spec)
        run.kept += [crt, key]
        return
    cert, leaf_key = _issue(run, spec)
    write_key(key, leaf_key)
    write_cert(crt, cert)
    run.created += [crt, key]


def _ensure_combined(run: _Run, path: Path, spec: LeafSpec) -> None:
    if not run.force and path.exists():
        _check_kept(run, path, read_cert(path), read_key(path), spec)
        run.kept.append(path)
        return
    write_cert_and_key(path, *_issue(run, spec))
    run.created.append(path)


def _ensure_service_account_keys(run: _Run) -> None:
    sa_key, sa_pub = run.layout.sa_key, run.layout.sa_pub
    if not run.force and sa_key.exists():
        key = read_key(sa_key)
        run.kept.append(sa_key)
    else:
        key = make_key(run.key_type)
        write_key(sa_key, key)
        run.created.append(sa_key)
    if run.force or sa_key in run.created or not sa_pub.exists():
        write_public_key(sa_pub, key)
        run.created.append(sa_pub)
    else:
        run.kept.append(sa_pub)


def _ensure_tokens(run: _Run) -> None:
    path = run.layout.tokens_csv
    if not run.force and path.exists():
        run.kept.append(path)
        return
    write_secret_text(path, render_token_csv(default_static_tokens()))
    run.created.append(path)


def _ensure_bootstrap_token(run: _Run) -> Token:
    path = run.layout.bootstrap_token
    if not run.force and path.exists():
        run.kept.append(path)
        return Token(str(parse_bootstrap_token(path.read_text())))
    token = make_bootstrap_token()
    write_secret_text(path, f"{token}\n")
    run.created.append(path)
    return Token(str(token))


def _ensure_node(run: _Run, name: str, ip: str | None) -> None:
    node = run.layout.node(name)
    ca_pem = dump_cert_pem(run.ca[0])
    if node.ca_crt.exists() and node.ca_crt.read_bytes() == ca_pem:
        run.kept.append(node.ca_crt)
    else:
        write_cert(node.ca_crt, run.ca[0])
        run.created.append(node.ca_crt)
    client = kubelet_client_spec(name)
    _ensure_combined(run, node.kubelet_client_pem, client)
    _ensure_pair(run, node.kubelet_crt, node.kubelet_key, kubelet_serving_spec(name, ip))
    pem = str(node.kubelet_client_pem.relative_to(node.root))
    _ensure_kubeconfig(run, node.kubelet_conf, client.cn, lambda: ClientCertFiles(pem, pem))


def _ensure_cert_kubeconfig(run: _Run, path: Path, spec: LeafSpec) -> None:
    def credential() -> Credential:
        cert, key = _issue(run, spec)
        return ClientCertData(dump_cert_pem(cert), dump_key_pem(key))

    _ensure_kubeconfig(run, path, spec.cn, credential)


def _ensure_kubeconfig(
    run: _Run,
    path: Path,
    user: str,
    credential: Callable[[], Credential],
    *,
    expect: Credential | None = None,
) -> None:
    if not run.force and path.exists():
        _check_kubeconfig(run, path, expect)
        run.kept.append(path)
        return
    ca_pem = dump_cert_pem(run.ca[0])
    config = build_kubeconfig(server=run.server, ca_pem=ca_pem, user=user, credential=credential())
    write_kubeconfig(path, config)
    run.created.append(path)


def _check_kubeconfig(run: _Run, path: Path, expected: Credential | None) -> None:
    config = read_client_config(path)
    hint = "delete it or re-run with --force"
    if config.server != run.server:
        raise PkiError(f"{path} points at {config.server}, not {run.server}; {hint}")
    if config.ca_pem != dump_cert_pem(run.ca[0]):
        raise PkiError(f"{path} trusts a different CA than {run.layout.ca_crt}; {hint}")
    if expected is not None and config.credential != expected:
        raise PkiError(f"{path} does not hold the token in {run.layout.bootstrap_token}; {hint}")
    if isinstance(config.credential, ClientCertData):
        _check_kept(run, path, load_cert_pem(config.credential.cert_pem), None, LeafSpec(config.user))


def _check_kept(
    run: _Run, path: Path, cert: x509.Certificate, key: PrivateKey | None, spec: LeafSpec
) -> None:
    hint = "delete it or re-run with --force"
    if not chains_to(cert, run.ca[0]):
        raise PkiError(f"{path} is not signed by {run.layout.ca_crt} or has expired; {hint}")
    if key is not None and dump_public_key_pem(cert.public_key()) != dump_public_key_pem(key):
        raise PkiError(f"the key in {path} does not match its certificate; {hint}")
    info = describe(cert)
    present = info.dns_names + info.ip_addresses
    missing = [san for san in (*spec.dns_names, *spec.ip_addresses) if san not in present]
    if missing:
        raise PkiError(f"{path} lacks the SANs {', '.join(missing)}; {hint}")


def _issue(run: _Run, spec: LeafSpec) -> tuple[x509.Certificate, PrivateKey]:
    key = make_key(run.key_type)
    ca_cert, ca_key = run.ca
    cert = issue_cert(
        ca_cert,
        ca_key,
        key.public_key(),
        spec.cn,
        spec.organizations,
        spec.dns_names,
        spec.ip_addresses,
        server=spec.server,
        client=spec.client,
    )
    return cert, key
