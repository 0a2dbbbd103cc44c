"""Mini control plane PKI: the keys, certificates, CSRs and kubeconfigs kubeadm would make.

Pure modules build values (:mod:`pki.certs`, :mod:`pki.certinfo`, :mod:`pki.pem`, :mod:`pki.signer`,
:mod:`pki.kubeconfig`, :mod:`pki.tokens`); :mod:`pki.files` is the only one that writes to disk;
:mod:`pki.init` lays out a whole cluster's directory; ``python -m pki`` is the command line.
"""

from pki.certinfo import CertInfo, chains_to, describe, read_sans
from pki.certs import SANs, issue_cert, make_ca, make_csr, make_key
from pki.errors import PemError, PkiError, SigningError
from pki.files import Layout, NodeLayout, read_client_config
from pki.init import InitResult, init_pki
from pki.kubeconfig import (
    ClientCertData,
    ClientCertFiles,
    ClientConfig,
    Token,
    build_kubeconfig,
    client_config,
    dump_kubeconfig,
    load_kubeconfig,
)
from pki.pem import dump_cert_pem, dump_key_pem, dump_public_key_pem, load_cert_pem, load_key_pem
from pki.signer import (
    KUBE_APISERVER_CLIENT,
    KUBE_APISERVER_CLIENT_KUBELET,
    KUBELET_SERVING,
    sign_csr,
)

__all__ = [
    "KUBELET_SERVING",
    "KUBE_APISERVER_CLIENT",
    "KUBE_APISERVER_CLIENT_KUBELET",
    "CertInfo",
    "ClientCertData",
    "ClientCertFiles",
    "ClientConfig",
    "InitResult",
    "Layout",
    "NodeLayout",
    "PemError",
    "PkiError",
    "SANs",
    "SigningError",
    "Token",
    "build_kubeconfig",
    "chains_to",
    "client_config",
    "describe",
    "dump_cert_pem",
    "dump_key_pem",
    "dump_public_key_pem",
    "dump_kubeconfig",
    "init_pki",
    "issue_cert",
    "load_cert_pem",
    "load_key_pem",
    "load_kubeconfig",
    "make_ca",
    "make_csr",
    "make_key",
    "read_client_config",
    "read_sans",
    "sign_csr",
]
