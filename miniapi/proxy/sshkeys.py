"""The SSH tunnels' keys: the apiserver's key pair (``--ssh-keyfile``) and the nodes' host keys.

**Client key.** As the historical tunneler did (pkg/master/tunneler/ssh.go): if ``<keyfile>.pub`` is
missing, generate an RSA 2048 key pair, delete a private key left from a half-finished earlier run,
write ``<keyfile>`` (PKCS#1 PEM, 0600) and then ``<keyfile>.pub`` (PKIX PEM ``PUBLIC KEY``, written last
via a rename, so its presence means the pair is complete). The real feature pushed the public key to
every node through the cloud provider; the lab writes it into the node's authorized_keys
(:func:`authorized_key` gives the OpenSSH line; ``ssh-keygen -i -m PKCS8 -f <keyfile>.pub`` does too).

**Host keys.** Two policies, chosen by ``--ssh-known-hosts``:

1. :class:`AcceptAnyHostKey` (the default, and the historical behaviour the 2019 security audit
   flagged): any key is accepted; every connection logs a WARNING with the key's fingerprint, so a
   change is at least visible in the log. INSECURE: whoever answers on the node's address gets the
   tunnel, and with it every kubelet, pod and service connection routed through that node.
2. :class:`KnownHosts` (our hardening switch): OpenSSH's known_hosts format (plain or hashed names,
   ``[host]:port`` for ports other than 22). An unknown node is trusted on first use and appended
   (``StrictHostKeyChecking=accept-new``: nodes come and go); a node that presents a key other than
   the recorded one is refused before authentication with :class:`HostKeyChangedError`, which names
   the host and both fingerprints.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

import asyncssh
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pki.files import write_atomic

log = logging.getLogger("miniapi.proxy.ssh")

RSA_BITS = 2048


class HostKeyChangedError(Exception):
    """The node presented a host key other than the one known_hosts records for it."""

    def __init__(self, host: str, port: int, known: list[str], offered: str, path: str) -> None:
        self.host, self.port, self.known, self.offered, self.path = host, port, known, offered, path
        where = host if port == 22 else f"[{host}]:{port}"
        super().__init__(
            f"ssh: host key mismatch for {where}: {path} has {', '.join(known)}, the node presented {offered}; "
            f"refusing the tunnel (someone may be impersonating the node; if it was reinstalled, remove the "
            f"old key: ssh-keygen -R '{where}' -f {path})")


def ensure_keypair(keyfile: str) -> asyncssh.SSHKey:
    """The private key of ``--ssh-keyfile``, generating the pair first if ``<keyfile>.pub`` is missing."""
    pub = Path(keyfile + ".pub")
    if not pub.exists():
        log.info("Key doesn't exist, attempting to create keyfile=%s", keyfile)
        if os.path.exists(keyfile):
            log.info("Private key exists, but public key does not: removing it keyfile=%s", keyfile)
            os.remove(keyfile)
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        write_atomic(Path(keyfile), private, 0o600)
        write_atomic(pub, public, 0o600)
    return asyncssh.read_private_key(keyfile)


def authorized_key(keyfile: str) -> str:
    """The OpenSSH public-key line (``ssh-rsa AAAA... kube-apiserver``) of ``--ssh-keyfile``."""
    key = asyncssh.read_private_key(keyfile)
    key.set_comment("kube-apiserver")
    return key.export_public_key("openssh").decode().strip()


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


class HostKeyPolicy(Protocol):
    """Decides, during key exchange and before authentication, whether a node's host key is acceptable."""

    def check(self, node: str, host: str, port: int, key: asyncssh.SSHKey) -> None:
        """Return if acceptable; raise HostKeyChangedError otherwise."""


class AcceptAnyHostKey:
    """The historical behaviour: no verification (INSECURE), one WARNING per connection."""

    def check(self, node: str, host: str, port: int, key: asyncssh.SSHKey) -> None:
        log.warning("ssh host key NOT verified node=%s address=%s:%d key=%s fingerprint=%s (historical "
                    "behaviour; pass --ssh-known-hosts to verify)", node, host, port, key.get_algorithm(),
                    fingerprint(key))


class KnownHosts:
    """known_hosts verification: trust on first use, refuse a changed key."""

    def __init__(self, path: str) -> None:
        self.path = path
        Path(path).touch(mode=0o600, exist_ok=True)

    def _known(self, host: str, port: int) -> list[asyncssh.SSHKey]:
        known_hosts = asyncssh.read_known_hosts(self.path)
        trusted, *_ = known_hosts.match(host, host, port if port != 22 else None)
        return list(trusted)

    def check(self, node: str, host: str, port: int, key: asyncssh.SSHKey) -> None:
        known = self._known(host, port)
        if not known:
            name = host if port == 22 else f"[{host}]:{port}"
            algorithm, blob = key.export_public_key("openssh").decode().split()[:2]
            with open(self.path, "a") as f:
                f.write(f"{name} {algorithm} {blob}\n")
            log.info("ssh host key recorded (first use) node=%s address=%s:%d fingerprint=%s file=%s", node, host,
                     port, fingerprint(key), self.path)
            return
        if key in known:
            log.info("ssh host key verified node=%s address=%s:%d fingerprint=%s", node, host, port,
                     fingerprint(key))
            return
        raise HostKeyChangedError(host, port, sorted({fingerprint(k) for k in known}), fingerprint(key), self.path)
