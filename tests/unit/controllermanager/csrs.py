"""CertificateSigningRequest objects for the certificate controller tests, made at test time."""

from __future__ import annotations

import base64
from typing import Any

from pki.certs import make_csr, make_key
from pki.signer import KUBE_APISERVER_CLIENT_KUBELET

Obj = dict[str, Any]
BOOTSTRAPPER = "system:bootstrap:abcdef"
BOOTSTRAP_GROUPS = ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                    "system:authenticated"]
_KEY = make_key("ec")


def csr(name: str = "node-csr-1", *, cn: str = "system:node:node1", orgs: tuple[str, ...] = ("system:nodes",),
        signer: str = KUBE_APISERVER_CLIENT_KUBELET, usages: tuple[str, ...] = ("digital signature", "client auth"),
        username: str = BOOTSTRAPPER, groups: list[str] | None = None, dns: tuple[str, ...] = (),
        ips: tuple[str, ...] = (), conditions: tuple[str, ...] = (), certificate: str = "",
        expiration: int | None = None, request: str | None = None) -> Obj:
    pem = make_csr(_KEY, cn, orgs, dns, ips)
    spec: Obj = {"request": request if request is not None else base64.b64encode(pem).decode(),
                 "signerName": signer, "usages": list(usages), "username": username, "uid": "",
                 "groups": groups if groups is not None else list(BOOTSTRAP_GROUPS)}
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    status: Obj = {}
    if conditions:
        status["conditions"] = [{"type": c, "status": "True", "reason": "Test"} for c in conditions]
    if certificate:
        status["certificate"] = certificate
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name}, "spec": spec, "status": status}
