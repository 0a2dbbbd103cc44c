"""A pod talks to the control plane as the source page says pods do (issue 5, "Done when"): the official
Python client's ``load_incluster_config()`` inside a pod reads the projected token and ``ca.crt``,
connects to ``KUBERNETES_SERVICE_HOST`` (the ``kubernetes`` service's virtual IP), which minikubeproxy
sends to the apiserver's HTTPS endpoint, and lists the pods of its namespace: 403 without a
RoleBinding, the list with one; with a CA other than the mounted one the TLS handshake fails, so the
connection really was verified with ``ca.crt`` (the VIP is an IP SAN of the serving certificate).

Real processes: apiserver + controller-manager (tests/e2e/cluster.py), a kubelet
(tests/integration/kubelet_harness.py, root for the mount namespace), and ``python -m minikubeproxy``
in each of its modes (iptables DNAT where the iptables binary exists; userspace listeners).
Each run has its own loopback service range and chain prefix (a running lab is not disturbed).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.cluster import ROOT, Cluster, Kubectl, free_service_cidr, make_cluster
from tests.integration.kubelet_harness import KubeletProc

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces and the VIP's port 443 need root")]

NODE, IP = "node1", "127.0.1.65"
SCRIPT = r'''
import os, sys, tempfile, time
import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_incluster_config()
cfg = client.Configuration.get_default_copy()
print("host", cfg.host, "verify", cfg.verify_ssl, "ca", cfg.ssl_ca_cert, flush=True)
if os.environ.get("WRONG_CA"):
    import datetime as dt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-cluster-ca")])
    now = dt.datetime.now(dt.timezone.utc)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
          .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    path = os.path.join(tempfile.mkdtemp(), "wrong-ca.crt")
    open(path, "wb").write(ca.public_bytes(serialization.Encoding.PEM))
    cfg.ssl_ca_cert = path
cfg.retries = 0
namespace = open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read()
api = client.CoreV1Api(client.ApiClient(cfg))
for attempt in range(80):
    try:
        pods = api.list_namespaced_pod(namespace)
        print("RESULT OK", " ".join(sorted(p.metadata.name for p in pods.items)), flush=True)
        break
    except ApiException as e:
        print("RESULT HTTP", e.status, e.reason, flush=True)
        break
    except urllib3.exceptions.HTTPError as e:
        if "CERTIFICATE_VERIFY_FAILED" in str(e):
            print("RESULT TLS CERTIFICATE_VERIFY_FAILED", flush=True)
            break
        time.sleep(0.25)
else:
    print("RESULT UNREACHABLE", flush=True)
'''


@dataclass
class Env:
    cluster: Cluster
    admin: Kubectl
    vip: str


def wait_vip(cluster: Cluster, vip: str, timeout: float = 30) -> None:
    """Until a TLS handshake through the VIP, verified against the cluster CA by IP, succeeds."""
    ctx = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((vip, 443), timeout=2) as raw, ctx.wrap_socket(raw, server_hostname=vip):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the kubernetes VIP {vip}:443 did not reach the apiserver within {timeout}s")


HAVE_IPTABLES = shutil.which("iptables") is not None


@pytest.fixture(scope="module", params=[
    pytest.param("iptables", marks=pytest.mark.skipif(not HAVE_IPTABLES, reason="iptables is not installed")),
    "userspace"])
def env(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("incluster")
    cidr = free_service_cidr()
    cluster = make_cluster(root, service_cidr=cidr)
    kubelet = KubeletProc(cluster, NODE, IP, root / "kubelet-node1", root / "nodes" / NODE / "kubelet.conf",
                          ["--pod-cidr", "127.245.65.0/24"])
    prefix = "E" + "".join(random.choices("ABCDEFGHJKLMNPQRSTUVWXYZ", k=3))
    proxy_log = open(root / "kube-proxy.log", "ab")
    proxy = subprocess.Popen([sys.executable, "-m", "minikubeproxy", "--kubeconfig", str(root / "kube-proxy.conf"),
                              "--hostname-override", NODE, "--iptables-chain-prefix", prefix,
                              "--proxy-mode", request.param,
                              "--iptables-min-sync-period", "0.1"], stdout=proxy_log, stderr=subprocess.STDOUT,
                             cwd=ROOT)
    kubelet.start()
    try:
        vip = cidr.replace(".0/24", ".1")
        wait_vip(cluster, vip)
        yield Env(cluster, cluster.kubectl("admin.conf"), vip)
    finally:
        kubelet.cleanup()
        proxy.terminate()
        proxy.wait(15)
        cluster.stop()


def run_lister(env: Env, name: str, **extra_env: str) -> list[str]:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
           "spec": {"nodeName": NODE, "restartPolicy": "Never", "serviceAccountName": "reader",
                    "containers": [{"name": "c1", "image": "python", "command": [sys.executable, "-c", SCRIPT],
                                    "env": [{"name": k, "value": v} for k, v in extra_env.items()]}]}}
    env.admin.ok("apply", "-f", "-", input=json.dumps(pod))
    env.admin.ok("wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}", "--timeout=60s")
    return env.admin.ok("logs", name).splitlines()


def result(lines: list[str]) -> str:
    return next(line for line in lines if line.startswith("RESULT ")).removeprefix("RESULT ")


def test_pod_lists_pods_through_the_kubernetes_vip_only_when_rbac_allows(env: Env) -> None:
    env.admin.ok("create", "serviceaccount", "reader")
    denied = run_lister(env, "lister-denied")
    sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert denied[0] == f"host https://{env.vip}:443 verify True ca {sa_dir}/ca.crt"
    assert result(denied) == "HTTP 403 Forbidden"

    env.admin.ok("create", "role", "pod-reader", "--verb=list", "--resource=pods")
    env.admin.ok("create", "rolebinding", "reader-reads", "--role=pod-reader", "--serviceaccount=default:reader")
    allowed = run_lister(env, "lister-allowed")
    assert result(allowed).split() == ["OK", "lister-allowed", "lister-denied"]


def test_the_connection_is_verified_with_the_mounted_ca(env: Env) -> None:
    lines = run_lister(env, "lister-wrong-ca", WRONG_CA="1")
    assert result(lines) == "TLS CERTIFICATE_VERIFY_FAILED"
