"""Kubeconfig files, built and read as plain dicts (pure; files.py writes them to disk).

The shape kubectl and client-go read (k8s.io/client-go/tools/clientcmd/api/v1), named as kubeadm
names them: cluster ``kubernetes``, user ``kubernetes-admin``, context ``kubernetes-admin@kubernetes``::

    apiVersion: v1
    kind: Config
    clusters:
    - cluster:
        certificate-authority-data: LS0tLS1CRUdJTi...   # base64 of the CA PEM
        server: https://127.0.0.1:6443
      name: kubernetes
    contexts:
    - context:
        cluster: kubernetes
        user: kubernetes-admin
      name: kubernetes-admin@kubernetes
    current-context: kubernetes-admin@kubernetes
    preferences: {}
    users:
    - name: kubernetes-admin
      user:
        client-certificate-data: LS0tLS1CRUdJTi...     # or client-certificate: <path>
        client-key-data: LS0tLS1CRUdJTi...             # or client-key: <path>
                                                        # or token: abcdef.0123456789abcdef

Relative paths (``client-certificate: pki/kubelet-client-current.pem``) are relative to the
kubeconfig file's directory, as in client-go. :func:`client_config` picks the current context's
server and credentials; resolving file paths is left to the caller (see files.read_client_config).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from pki import miniyaml
from pki.errors import PkiError


@dataclass(frozen=True)
class ClientCertData:
    """Certificate and key embedded in the kubeconfig (``client-certificate-data``)."""

    cert_pem: bytes
    key_pem: bytes


@dataclass(frozen=True)
class ClientCertFiles:
    """Certificate and key by path (``client-certificate``); may name the same combined file."""

    cert_path: str
    key_path: str


@dataclass(frozen=True)
class Token:
    """A bearer token: static (tokens.csv), bootstrap (``id.secret``) or service account JWT."""

    token: str


Credential = ClientCertData | ClientCertFiles | Token


@dataclass(frozen=True)
class ClientConfig:
    """What a client needs from a kubeconfig: where to go, whom to trust, who to be."""

    server: str
    ca_pem: bytes | None
    ca_file: str | None
    user: str
    credential: Credential | None


def context_name(user: str, cluster: str = "kubernetes") -> str:
    return f"{user}@{cluster}"


def build_kubeconfig(
    *, server: str, ca_pem: bytes, user: str, credential: Credential, cluster: str = "kubernetes"
) -> dict[str, Any]:
    """A one-cluster, one-user, one-context kubeconfig with that context current."""
    context = context_name(user, cluster)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"cluster": {"certificate-authority-data": _b64(ca_pem), "server": server}, "name": cluster}
        ],
        "contexts": [{"context": {"cluster": cluster, "user": user}, "name": context}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": _user_entry(credential)}],
    }


def dump_kubeconfig(config: dict[str, Any]) -> str:
    """YAML text (kubectl reads it; so does :func:`load_kubeconfig`)."""
    return miniyaml.dump(config)


def load_kubeconfig(text: str) -> dict[str, Any]:
    """Parse a kubeconfig written as JSON or block YAML; PkiError if it is neither."""
    try:
        config = miniyaml.load(text)
    except ValueError as e:
        raise PkiError(f"cannot parse kubeconfig: {e}") from None
    if not isinstance(config, dict) or config.get("kind", "Config") != "Config":
        raise PkiError("not a kubeconfig: expected a mapping with kind: Config")
    return config


def client_config(config: dict[str, Any], *, context: str | None = None) -> ClientConfig:
    """The server, CA and credential of ``context`` (default: current-context)."""
    name = context or config.get("current-context") or ""
    ctx = _named(config, "contexts", "context", name)
    cluster = _named(config, "clusters", "cluster", str(ctx.get("cluster", "")))
    user_name = str(ctx.get("user", ""))
    user = _named(config, "users", "user", user_name) if user_name else {}
    ca_data = cluster.get("certificate-authority-data")
    return ClientConfig(
        server=str(cluster.get("server", "")),
        ca_pem=_unb64(ca_data, "certificate-authority-data") if ca_data else None,
        ca_file=cluster.get("certificate-authority"),
        user=user_name,
        credential=_read_credential(user),
    )


def _user_entry(credential: Credential) -> dict[str, str]:
    if isinstance(credential, ClientCertData):
        return {
            "client-certificate-data": _b64(credential.cert_pem),
            "client-key-data": _b64(credential.key_pem),
        }
    if isinstance(credential, ClientCertFiles):
        return {"client-certificate": credential.cert_path, "client-key": credential.key_path}
    return {"token": credential.token}


def _read_credential(user: dict[str, Any]) -> Credential | None:
    if "client-certificate-data" in user and "client-key-data" in user:
        return ClientCertData(
            _unb64(user["client-certificate-data"], "client-certificate-data"),
            _unb64(user["client-key-data"], "client-key-data"),
        )
    if "client-certificate" in user and "client-key" in user:
        return ClientCertFiles(str(user["client-certificate"]), str(user["client-key"]))
    if user.get("token"):
        return Token(str(user["token"]))
    return None


def _named(config: dict[str, Any], section: str, field: str, name: str) -> dict[str, Any]:
    for entry in config.get(section) or ():
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(field) or {}
            if isinstance(value, dict):
                return value
    raise PkiError(f"kubeconfig has no {section[:-1]} named {name!r}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, field: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise PkiError(f"kubeconfig field {field} is not valid base64") from None
