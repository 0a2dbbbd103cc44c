"""Kubelet certificates: TLS bootstrapping, rotation, the serving certificate (PROTOCOLS.md section 7).

1. Client certificate (pkg/kubelet/certificate/bootstrap ``LoadClientCert``). If ``--kubeconfig``
   holds a certificate that is still valid, use it. Otherwise, with ``--bootstrap-kubeconfig`` (a
   bootstrap token, user ``system:bootstrap:<id>``): load or make an ECDSA P-256 key (kept in
   ``kubelet-client.key.tmp`` until the end, so a restart reuses it and finds the same CSR), create
   CSR ``node-csr-<base64url(sha512/256(key, subject, usages))>`` with ``CN=system:node:NAME,
   O=system:nodes``, signer ``kubernetes.io/kube-apiserver-client-kubelet``, usages [digital
   signature, client auth]; an AlreadyExists CSR is reused if it asks for the same thing. Wait with
   LIST + WATCH ``fieldSelector=metadata.name=NAME``: Denied or Failed is fatal; Approved with a
   ``status.certificate`` is success. Store certificate + key as ``kubelet-client-<ts>.pem`` with the
   symlink ``kubelet-client-current.pem`` and write ``--kubeconfig`` pointing at it.
2. Rotation (``--rotate-certificates``; client-go util/certificate Manager): renew at a random
   point between 70% and 90% of the certificate's lifetime with a new key and a ``generateName:
   csr-`` CSR sent with the current certificate (the controller-manager approves it as
   ``selfnodeclient``). The kubelet then reloads its client and drops its connections.
3. Serving certificate: ``--tls-cert-file`` if given; else with ``serverTLSBootstrap`` a CSR for
   signer ``kubernetes.io/kubelet-serving`` (usages digital signature + server auth, DNS SAN the
   node name, IP SAN the node IP), which nobody approves automatically: until ``kubectl certificate
   approve`` the kubelet has no serving certificate at all (the real one fails TLS handshakes with
   "no serving certificate available"); else a self-signed pair ``kubelet.crt``/``kubelet.key`` in
   ``--cert-dir`` (CN ``<hostname>@<unix time>``, signed by a throw-away ``<hostname>-ca@<time>``).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from miniapi.client import ClientError, KubeClient
from pki.certs import PrivateKey, issue_cert, make_ca, make_csr, make_key
from pki.errors import PkiError
from pki.files import PRIVATE_MODE, read_client_config, write_atomic, write_kubeconfig
from pki.kubeconfig import ClientCertData, ClientConfig
from pki.pem import dump_cert_pem, dump_key_pem, load_cert_pem, load_key_pem
from pki.signer import KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING

log = logging.getLogger("minikubelet.bootstrap")
TMP_KEY_FILE = "kubelet-client.key.tmp"
NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
BOOTSTRAP_TIMEOUT = 3600.0  # LoadClientCert waits an hour
CERTIFICATE_WAIT_TIMEOUT = 15 * 60.0  # client-go certificate manager's certificateWaitTimeout
USER_AGENT = "kubelet/v1.37.0-minikubelet (linux) minikubelet"


class BootstrapError(Exception):
    """The kubelet cannot get a certificate (denied, failed, incompatible, no bootstrap credentials)."""


# --- CSRs (pure) ------------------------------------------------------------------------------------


def client_usages(key: PrivateKey) -> list[str]:
    return ["digital signature", "client auth"] + (["key encipherment"] if isinstance(key, rsa.RSAPrivateKey) else [])


def serving_usages(key: PrivateKey) -> list[str]:
    if isinstance(key, rsa.RSAPrivateKey):
        return ["digital signature", "key encipherment", "server auth"]
    return ["digital signature", "server auth"]


def digested_name(key: PrivateKey, cn: str, organizations: Sequence[str], usages: Sequence[str]) -> str:
    """``node-csr-`` + base64url(sha512/256) over key, subject and usages, each base64url'd + ``|``."""
    def enc(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    h = hashes.Hash(hashes.SHA512_256())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for part in (der, cn.encode(), *(o.encode() for o in organizations), *(u.encode() for u in usages)):
        h.update(enc(part) + b"|")
    return "node-csr-" + enc(h.finalize()).decode()


def csr_object(csr_pem: bytes, signer: str, usages: Sequence[str], name: str = "",
               expiration_seconds: int | None = None) -> dict[str, Any]:
    """A certificates.k8s.io/v1 CertificateSigningRequest; no name means ``generateName: csr-``."""
    spec: dict[str, Any] = {"request": base64.b64encode(csr_pem).decode(), "signerName": signer,
                            "usages": list(usages)}
    if expiration_seconds is not None:
        spec["expirationSeconds"] = expiration_seconds
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name} if name else {"generateName": "csr-"}, "spec": spec}


def csr_outcome(obj: dict[str, Any], uid: str) -> bytes | None:
    """The issued PEM, None while pending; BootstrapError if denied, failed or replaced (WaitForCertificate)."""
    meta, status = obj.get("metadata") or {}, obj.get("status") or {}
    if uid and meta.get("uid") != uid:
        raise BootstrapError(f"csr {meta.get('name')!r} changed UIDs")
    approved = False
    for c in status.get("conditions") or ():
        if c.get("type") == "Denied" and c.get("status", "True") == "True":
            raise BootstrapError(f"certificate signing request is denied, reason: {c.get('reason', '')}, "
                                 f"message: {c.get('message', '')}")
        if c.get("type") == "Failed" and c.get("status", "True") == "True":
            raise BootstrapError(f"certificate signing request failed, reason: {c.get('reason', '')}, "
                                 f"message: {c.get('message', '')}")
        approved = approved or (c.get("type") == "Approved" and c.get("status", "True") == "True")
    if approved and status.get("certificate"):
        return base64.b64decode(status["certificate"])
    return None


def rotation_deadline(cert: x509.Certificate, u: float) -> float:
    """notBefore + (0.7 .. 0.9) x lifetime, u in [0, 1) (client-go jitteryDuration)."""
    start, end = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    return start + (end - start) * (0.7 + 0.2 * u)


# --- talking to the apiserver -------------------------------------------------------------------------


def _public_der(csr_pem: bytes) -> bytes:
    csr = x509.load_pem_x509_csr(csr_pem)
    return csr.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


async def request_certificate(client: KubeClient, obj: dict[str, Any]) -> tuple[str, str]:
    """Create the CSR (or reuse an identical one that exists); returns (name, uid)."""
    try:
        made = await client.create("certificatesigningrequests", obj, group="certificates.k8s.io")
    except ClientError as e:
        if e.code != 409 or not obj["metadata"].get("name"):
            raise
        made = await client.get("certificatesigningrequests", obj["metadata"]["name"], group="certificates.k8s.io")
        mine, theirs = obj["spec"], made.get("spec") or {}
        same_key = _public_der(base64.b64decode(mine["request"])) == _public_der(base64.b64decode(theirs["request"]))
        if not same_key or theirs.get("signerName") != mine["signerName"] or \
                sorted(theirs.get("usages") or []) != sorted(mine["usages"]):
            raise BootstrapError(f"retrieved csr {obj['metadata']['name']!r} is not compatible") from None
        log.info("reusing existing csr name=%s", made["metadata"]["name"])
    return str(made["metadata"]["name"]), str(made["metadata"].get("uid", ""))


async def wait_for_certificate(client: KubeClient, name: str, uid: str, timeout: float) -> bytes:
    """LIST + WATCH one CSR until it is issued (PEM), denied or failed (BootstrapError), or timeout."""
    async with asyncio.timeout(timeout):
        while True:
            lst = await client.list("certificatesigningrequests", group="certificates.k8s.io",
                                    fieldSelector=f"metadata.name={name}")
            for item in lst.get("items") or ():
                pem = csr_outcome(item, uid)
                if pem is not None:
                    return pem
            rv = str((lst.get("metadata") or {}).get("resourceVersion", ""))
            try:
                async for event in client.watch("certificatesigningrequests", group="certificates.k8s.io",
                                                resource_version=rv, fieldSelector=f"metadata.name={name}"):
                    if event.get("type") == "DELETED":
                        raise BootstrapError(f"csr {name!r} was deleted")
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        pem = csr_outcome(event["object"], uid)
                        if pem is not None:
                            return pem
            except ClientError as e:
                if e.code != 410:
                    raise


# --- files --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertStore:
    """client-go certificate.FileStore: ``<pair>-<ts>.pem`` files and the ``<pair>-current.pem`` symlink."""

    directory: str
    pair: str  # kubelet-client | kubelet-server
    fallback_cert: str = ""
    fallback_key: str = ""

    @property
    def current_path(self) -> str:
        return os.path.join(self.directory, f"{self.pair}-current.pem")

    def current(self) -> tuple[x509.Certificate, str] | None:
        """The current certificate and the file holding it with its key, None if there is none."""
        for cert_file, key_file in ((self.current_path, self.current_path), (self.fallback_cert, self.fallback_key)):
            if not cert_file:
                continue
            try:
                cert = load_cert_pem(Path(cert_file).read_bytes())
                load_key_pem(Path(key_file).read_bytes())
            except (OSError, PkiError, ValueError):
                continue
            return cert, cert_file
        return None

    def update(self, cert_pem: bytes, key: PrivateKey) -> str:
        """Write a new pair file and flip the symlink to it (atomically); returns the symlink path."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d-%H-%M-%S")
        name = f"{self.pair}-{stamp}.pem"
        write_atomic(Path(self.directory) / name, cert_pem.rstrip(b"\n") + b"\n" + dump_key_pem(key), PRIVATE_MODE)
        tmp = f"{self.current_path}.tmp{os.getpid()}"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(name, tmp)
        os.replace(tmp, self.current_path)
        return self.current_path


def kubeconfig_is_valid(path: str) -> bool:
    """isClientConfigStillValid: the kubeconfig exists and its client certificate is not expired."""
    try:
        cfg = read_client_config(Path(path))
    except (OSError, PkiError, ValueError) as e:
        if os.path.exists(path):
            log.warning("unable to read existing kubeconfig %s: %s", path, e)
        return False
    if not isinstance(cfg.credential, ClientCertData):
        return cfg.credential is not None  # a token kubeconfig is usable as it is
    try:
        cert = load_cert_pem(cfg.credential.cert_pem)
    except (PkiError, ValueError):
        return False
    return time.time() < cert.not_valid_after_utc.timestamp()


def write_bootstrapped_kubeconfig(bootstrap: ClientConfig, path: str, pem_path: str) -> None:
    """writeKubeconfigFromBootstrapping: the bootstrap kubeconfig's cluster + the new cert by path."""
    cluster: dict[str, Any] = {"server": bootstrap.server}
    if bootstrap.ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(bootstrap.ca_pem).decode()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "default-context", "preferences": {},
              "clusters": [{"name": "default-cluster", "cluster": cluster}],
              "contexts": [{"name": "default-context", "context": {"cluster": "default-cluster",
                                                                   "user": "default-auth", "namespace": "default"}}],
              "users": [{"name": "default-auth", "user": {"client-certificate": pem_path, "client-key": pem_path}}]}
    write_kubeconfig(Path(path), config)


def _load_or_make_key(path: str) -> PrivateKey:
    try:
        return load_key_pem(Path(path).read_bytes())
    except (OSError, PkiError, ValueError):
        key = make_key("ec")
        write_atomic(Path(path), dump_key_pem(key), PRIVATE_MODE)
        return key


async def load_client_cert(kubeconfig: str, bootstrap_kubeconfig: str, cert_dir: str, node_name: str,
                           timeout: float = BOOTSTRAP_TIMEOUT) -> bool:
    """Rule 1. Returns True if it bootstrapped, False if ``kubeconfig`` was already usable."""
    if kubeconfig_is_valid(kubeconfig):
        log.info("kubeconfig %s exists and is valid, skipping bootstrap", kubeconfig)
        return False
    if not bootstrap_kubeconfig:
        raise BootstrapError(f"--kubeconfig {kubeconfig} is missing or has no valid client certificate, and no "
                             "--bootstrap-kubeconfig was given to get one")
    try:
        boot = read_client_config(Path(bootstrap_kubeconfig))
    except (OSError, PkiError, ValueError) as e:
        raise BootstrapError(f"unable to load bootstrap kubeconfig {bootstrap_kubeconfig}: {e}") from None
    os.makedirs(cert_dir, exist_ok=True)
    key_path = os.path.join(cert_dir, TMP_KEY_FILE)
    key = _load_or_make_key(key_path)
    cn, orgs, usages = NODE_PREFIX + node_name, [NODES_GROUP], client_usages(key)
    obj = csr_object(make_csr(key, cn, orgs), KUBE_APISERVER_CLIENT_KUBELET, usages,
                     name=digested_name(key, cn, orgs, usages))
    log.info("using bootstrap kubeconfig to generate TLS client cert, key and kubeconfig file")
    try:
        async with KubeClient.from_kubeconfig(bootstrap_kubeconfig, user_agent=USER_AGENT) as client:
            name, uid = await request_certificate(client, obj)
            log.info("waiting for client certificate to be issued csr=%s", name)
            pem = await wait_for_certificate(client, name, uid, timeout)
    except ClientError as e:
        raise BootstrapError(f"cannot create certificate signing request: {e}") from None
    except (aiohttp.ClientError, OSError) as e:
        raise BootstrapError(f"cannot reach the apiserver in {bootstrap_kubeconfig}: {e}") from None
    except TimeoutError:
        raise BootstrapError(f"timed out after {timeout:g}s waiting for the client certificate") from None
    path = CertStore(cert_dir, "kubelet-client").update(pem, key)
    os.unlink(key_path)
    write_bootstrapped_kubeconfig(boot, kubeconfig, path)
    log.info("client certificate issued csr=%s file=%s kubeconfig=%s", name, path, kubeconfig)
    return True


def ensure_self_signed(cert_dir: str, host: str) -> tuple[str, str]:
    """Rule 3's fallback: ``kubelet.crt`` (leaf + its CA) and ``kubelet.key``, made once."""
    crt, key_file = os.path.join(cert_dir, "kubelet.crt"), os.path.join(cert_dir, "kubelet.key")
    if os.path.exists(crt) and os.path.exists(key_file):
        return crt, key_file
    stamp = int(time.time())
    ca_cert, ca_key = make_ca(f"{host}-ca@{stamp}", 365, key_type="ec")
    key = make_key("ec")
    ips, dns = ([host], []) if _is_ip(host) else ([], [host])
    cert = issue_cert(ca_cert, ca_key, key.public_key(), f"{host}@{stamp}", dns_names=dns, ip_addresses=ips,
                      server=True)
    write_atomic(Path(key_file), dump_key_pem(key), PRIVATE_MODE)
    write_atomic(Path(crt), dump_cert_pem(cert) + dump_cert_pem(ca_cert), 0o644)
    return crt, key_file


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


# --- rotation ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """What to ask for: subject, SANs and signer."""

    node_name: str
    signer: str
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()


class CertificateManager:
    """Keeps one certificate fresh (rule 2 for the client certificate, rule 3 for the serving one)."""

    def __init__(self, store: CertStore, template: Template, client: Callable[[], KubeClient],
                 on_rotate: Callable[[str], Awaitable[None]], *, wait_timeout: float = CERTIFICATE_WAIT_TIMEOUT,
                 rng: random.Random | None = None) -> None:
        self.store, self.template, self._client, self._on_rotate = store, template, client, on_rotate
        self._wait_timeout = wait_timeout
        self._rng = rng or random.Random()
        self.last_csr = ""

    def next_deadline(self) -> float:
        cur = self.store.current()
        return 0.0 if cur is None else rotation_deadline(cur[0], self._rng.random())

    async def rotate(self) -> str:
        """Ask for a new certificate now, wait for it, store it; returns the current-pem path."""
        key = make_key("ec")
        t = self.template
        serving = t.signer == KUBELET_SERVING
        usages = serving_usages(key) if serving else client_usages(key)
        csr = make_csr(key, NODE_PREFIX + t.node_name, [NODES_GROUP], t.dns_names if serving else (),
                       t.ip_addresses if serving else ())
        client = self._client()
        name, uid = await request_certificate(client, csr_object(csr, t.signer, usages))
        self.last_csr = name
        log.info("certificate requested signer=%s csr=%s", t.signer, name)
        pem = await wait_for_certificate(client, name, uid, self._wait_timeout)
        path = self.store.update(pem, key)
        log.info("certificate rotated signer=%s csr=%s file=%s", t.signer, name, path)
        await self._on_rotate(path)
        return path

    async def run(self) -> None:
        delay = 1.0
        while True:
            await asyncio.sleep(max(0.0, self.next_deadline() - time.time()))
            try:
                await self.rotate()
                delay = 1.0
            except (BootstrapError, ClientError, aiohttp.ClientError, OSError, TimeoutError) as e:
                log.warning("certificate rotation failed signer=%s: %s; retrying in %.0fs", self.template.signer,
                            e, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300.0)
