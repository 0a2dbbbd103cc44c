"""The only module that writes to disk: kubeadm's file names and modes, written atomically.

Layout under DIR (default ``./_run``); DIR plays the control plane's ``/etc/kubernetes``, and
each ``nodes/NAME`` plays one node's ``/etc/kubernetes`` + ``/var/lib/kubelet/pki``, so a node
container mounts only its own directory::

    DIR/pki/ca.crt, ca.key                      cluster CA (--client-ca-file, --cluster-signing-*)
    DIR/pki/apiserver.crt, .key                 kube-apiserver serving certificate
    DIR/pki/apiserver-kubelet-client.crt, .key  kube-apiserver -> kubelet client certificate
    DIR/pki/sa.key, sa.pub                      service account token signing key pair
    DIR/admin.conf                              kubernetes-admin (O=system:masters)
    DIR/controller-manager.conf                 system:kube-controller-manager
    DIR/kube-proxy.conf                        system:kube-proxy
    DIR/bootstrap-kubelet.conf                  bootstrap token credential for TLS bootstrapping
    DIR/bootstrap-token                         that token, abcdef.0123456789abcdef
    DIR/tokens.csv                              --token-auth-file
    DIR/nodes/NAME/kubelet.conf                 refers to pki/kubelet-client-current.pem
    DIR/nodes/NAME/pki/ca.crt                   the CA again (kubelet --client-ca-file)
    DIR/nodes/NAME/pki/kubelet-client-current.pem  client cert + key in one file, as the
                                                kubelet's certificate manager stores it
    DIR/nodes/NAME/pki/kubelet.crt, .key        kubelet serving certificate (--tls-cert-file)

Every write goes to a temp file in the same directory, is fsync'ed, then ``os.replace``d over the
target, so a reader sees the old file or the new one, never half of one. Private keys, kubeconfigs
and token files are 0600; certificates and public keys 0644.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from pki.certs import PrivateKey
from pki.errors import PkiError
from pki.kubeconfig import ClientCertData, ClientCertFiles, ClientConfig, client_config, dump_kubeconfig
from pki.kubeconfig import load_kubeconfig as parse_kubeconfig
from pki.pem import dump_cert_pem, dump_key_pem, dump_public_key_pem, load_cert_pem, load_key_pem

DEFAULT_DIR = Path("_run")
PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


@dataclass(frozen=True)
class NodeLayout:
    """One node's files: ``DIR/nodes/NAME``."""

    root: Path

    @property
    def kubelet_conf(self) -> Path:
        return self.root / "kubelet.conf"

    @property
    def ca_crt(self) -> Path:
        return self.root / "pki" / "ca.crt"

    @property
    def kubelet_client_pem(self) -> Path:
        return self.root / "pki" / "kubelet-client-current.pem"

    @property
    def kubelet_crt(self) -> Path:
        return self.root / "pki" / "kubelet.crt"

    @property
    def kubelet_key(self) -> Path:
        return self.root / "pki" / "kubelet.key"


@dataclass(frozen=True)
class Layout:
    """The control plane's files under ``root`` (see the module docstring)."""

    root: Path

    def pki(self, name: str) -> Path:
        """``DIR/pki/<name>``, e.g. ``layout.pki("apiserver.crt")``."""
        return self.root / "pki" / name

    @property
    def ca_crt(self) -> Path:
        return self.pki("ca.crt")

    @property
    def ca_key(self) -> Path:
        return self.pki("ca.key")

    @property
    def sa_key(self) -> Path:
        return self.pki("sa.key")

    @property
    def sa_pub(self) -> Path:
        return self.pki("sa.pub")

    @property
    def admin_conf(self) -> Path:
        return self.root / "admin.conf"

    @property
    def controller_manager_conf(self) -> Path:
        return self.root / "controller-manager.conf"

    @property
    def kube_proxy_conf(self) -> Path:
        return self.root / "kube-proxy.conf"

    @property
    def bootstrap_kubelet_conf(self) -> Path:
        return self.root / "bootstrap-kubelet.conf"

    @property
    def bootstrap_token(self) -> Path:
        return self.root / "bootstrap-token"

    @property
    def tokens_csv(self) -> Path:
        return self.root / "tokens.csv"

    def node(self, name: str) -> NodeLayout:
        if not name or "/" in name or name.startswith("."):
            raise PkiError(f"invalid node name {name!r}")
        return NodeLayout(self.root / "nodes" / name)

    def node_names(self) -> list[str]:
        nodes = self.root / "nodes"
        return sorted(p.name for p in nodes.iterdir() if p.is_dir()) if nodes.is_dir() else []


# --- writing --------------------------------------------------------------------------------------


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with exactly ``mode``: temp file, fsync, rename, fsync the dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # exact mode, whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_cert(path: Path, cert: x509.Certificate) -> None:
    write_atomic(path, dump_cert_pem(cert), PUBLIC_MODE)


def write_key(path: Path, key: PrivateKey) -> None:
    write_atomic(path, dump_key_pem(key), PRIVATE_MODE)


def write_public_key(path: Path, key: PrivateKey) -> None:
    write_atomic(path, dump_public_key_pem(key), PUBLIC_MODE)


def write_cert_and_key(path: Path, cert: x509.Certificate, key: PrivateKey) -> None:
    """Certificate then key in one private file (``kubelet-client-current.pem``)."""
    write_atomic(path, dump_cert_pem(cert) + dump_key_pem(key), PRIVATE_MODE)


def write_kubeconfig(path: Path, config: dict[str, Any]) -> None:
    write_atomic(path, dump_kubeconfig(config).encode(), PRIVATE_MODE)


def write_secret_text(path: Path, text: str) -> None:
    """Token files: private, UTF-8."""
    write_atomic(path, text.encode(), PRIVATE_MODE)


# --- reading --------------------------------------------------------------------------------------


def read_cert(path: Path) -> x509.Certificate:
    return load_cert_pem(path.read_bytes())


def read_key(path: Path) -> PrivateKey:
    return load_key_pem(path.read_bytes())


def read_kubeconfig(path: Path) -> dict[str, Any]:
    return parse_kubeconfig(path.read_text())


def read_client_config(path: Path, *, context: str | None = None) -> ClientConfig:
    """The kubeconfig's current context with every file it names read in (paths relative to it)."""
    config = client_config(read_kubeconfig(path), context=context)
    base = path.parent
    ca_pem = config.ca_pem
    if ca_pem is None and config.ca_file:
        ca_pem = (base / config.ca_file).read_bytes()
    credential = config.credential
    if isinstance(credential, ClientCertFiles):
        credential = ClientCertData(
            (base / credential.cert_path).read_bytes(), (base / credential.key_path).read_bytes()
        )
    return ClientConfig(config.server, ca_pem, None, config.user, credential)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
