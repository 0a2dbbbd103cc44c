"""The kubelet process: every part wired in the order the real one starts them (cmd/kubelet/app).

1. Client certificate: bootstrap it if ``--kubeconfig`` is missing or expired (bootstrap.py).
2. The apiserver client, as ``system:node:NAME``; with ``--rotate-certificates`` a certificate
   manager renews it and the client reloads it (dropping its connections, as the real one does).
3. The runtime re-reads what a previous kubelet left running (adoption; runtime.py).
4. Serving certificate: ``--tls-cert-file``, or the ``kubelet-serving`` CSR with
   ``serverTLSBootstrap`` (until approved we serve the self-signed pair; the real kubelet serves
   nothing and its TLS handshakes fail), or the self-signed pair.
5. The kubelet API on ``--address:--port`` (+ ``--read-only-port``), see server.py.
6. Node registration, then the status and Lease heartbeats and a watch of its own Node (node.py).
7. The pod sync loop: list + watch this node's pods, one worker per pod (sync.py), with a service
   informer (list + watch of all services) for the containers' service-link variables, and the
   token manager + volume manager for projected service-account tokens (token.py, volumes.py).

``stop()`` ends all of it but leaves the pods' processes running: containers outlive their kubelet,
and the next kubelet adopts them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path
from typing import Any

from miniapi.client import KubeClient, ssl_context_for
from miniapi.controllermanager.informer import Informer
from minikubelet import bootstrap
from minikubelet.bootstrap import CertificateManager, CertStore, Template
from minikubelet.config import KubeletConfig, default_node_ip
from minikubelet.events import Recorder
from minikubelet.node import NodeAgent
from minikubelet.reconcile import BackOffPolicy
from minikubelet.runtime import ProcessRuntime
from minikubelet.sync import PodSource, PodWorkers
from pki.files import read_client_config, read_kubeconfig
from pki.kubeconfig import ClientCertData, ClientCertFiles, Token, client_config
from pki.signer import KUBE_APISERVER_CLIENT_KUBELET, KUBELET_SERVING

log = logging.getLogger("minikubelet")


def make_client(kubeconfig: str) -> tuple[KubeClient, ssl.SSLContext, tuple[str, str]]:
    """A client for the kubeconfig, its (reloadable) TLS context, and the cert/key files it names."""
    path = Path(kubeconfig)
    cfg = read_client_config(path)
    cert = key = token = None
    if isinstance(cfg.credential, ClientCertData):
        cert, key = cfg.credential.cert_pem, cfg.credential.key_pem
    elif isinstance(cfg.credential, Token):
        token = cfg.credential.token
    ctx = ssl_context_for(cfg.ca_pem, cert, key)
    files = ("", "")
    raw = client_config(read_kubeconfig(path)).credential
    if isinstance(raw, ClientCertFiles):
        files = (str(path.parent / raw.cert_path), str(path.parent / raw.key_path))
    return KubeClient(cfg.server, ctx, token, user_agent=bootstrap.USER_AGENT), ctx, files


def server_settings(cfg: KubeletConfig, cert_file: str, key_file: str) -> Any:
    from minikubelet.server import ServerSettings

    return ServerSettings(
        node_name=cfg.node_name, address=cfg.address, port=cfg.port, read_only_port=cfg.read_only_port,
        tls_cert_file=cert_file, tls_private_key_file=key_file, client_ca_file=cfg.client_ca_file,
        anonymous_auth=cfg.anonymous_auth, webhook_authn=cfg.authentication_token_webhook,
        webhook_authn_cache_ttl=cfg.authentication_token_webhook_cache_ttl,
        authorization_mode=cfg.authorization_mode, authz_allowed_ttl=cfg.authorization_webhook_cache_authorized_ttl,
        authz_denied_ttl=cfg.authorization_webhook_cache_unauthorized_ttl,
        enable_debugging_handlers=cfg.enable_debugging_handlers)


class Kubelet:
    def __init__(self, cfg: KubeletConfig) -> None:
        self.cfg = cfg
        self.node_name = cfg.node_name
        self.node_ip = default_node_ip(cfg)
        self.client: KubeClient | None = None
        self.api: Any = None
        self.runtime: ProcessRuntime | None = None
        self.node: NodeAgent | None = None
        self.workers: PodWorkers | None = None
        self.source: PodSource | None = None
        self.serving: CertificateManager | None = None
        self._recorder: Recorder | None = None
        self._ssl: ssl.SSLContext | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Kubelet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def start(self) -> None:
        cfg, cert_dir = self.cfg, self.cfg.certificate_dir
        os.makedirs(cfg.root_dir, exist_ok=True)
        os.makedirs(cert_dir, exist_ok=True)
        await bootstrap.load_client_cert(cfg.kubeconfig, cfg.bootstrap_kubeconfig, cert_dir, self.node_name)
        self.client, self._ssl, files = make_client(cfg.kubeconfig)
        client = self.client
        if cfg.rotate_certificates:
            store = CertStore(cert_dir, "kubelet-client", *files)
            current = store.current()
            if current is not None and current[1] != files[0]:
                self._ssl.load_cert_chain(current[1])  # a rotated certificate newer than the kubeconfig's
            rotator = CertificateManager(store, Template(self.node_name, KUBE_APISERVER_CLIENT_KUBELET),
                                         lambda: client, self._client_rotated)
            self._spawn(rotator.run(), "client-cert-rotation")
        self.runtime = ProcessRuntime(cfg.root_dir)
        adopted = self.runtime.load()
        if adopted:
            log.info("found %d pod(s) from a previous kubelet run", len(adopted))
        await self._start_api(*self._serving_cert())
        if self.serving is not None:
            self._spawn(self.serving.run(), "serving-cert")
        self.node = NodeAgent(client, node_name=self.node_name, node_ip=self.node_ip,
                              port=self.api.port if self.api else cfg.port, root_dir=cfg.root_dir,
                              labels=cfg.labels, pod_cidr=cfg.pod_cidr, max_pods=cfg.max_pods,
                              status_frequency=cfg.node_status_update_frequency,
                              lease_duration=cfg.node_lease_duration_seconds)
        if cfg.register_node:
            await self.node.register()
            self._spawn(self.node.status_loop(), "node-status")
            self._spawn(self.node.lease_loop(), "node-lease")
            self._spawn(self.node.watch_loop(), "node-informer")
        self._recorder = Recorder(client, self.node_name)
        node = self.node
        services = Informer(client, "services")
        self._spawn(services.run(), "service-informer")
        self.workers = PodWorkers(client, self.runtime, self._recorder, host_ip=self.node_ip,
                                  pod_cidr=lambda: node.node_pod_cidr,
                                  policy=BackOffPolicy(cfg.crash_loop_back_off_initial, cfg.crash_loop_back_off_max),
                                  sync_frequency=cfg.sync_frequency, services=services)
        self.source = PodSource(client, self.node_name, self.workers)
        self._spawn(self.source.run(), "pod-sync")
        log.info("kubelet started node=%s nodeIP=%s", self.node_name, self.node_ip)

    def _serving_cert(self) -> tuple[str, str]:
        cfg = self.cfg
        if cfg.tls_cert_file:
            return cfg.tls_cert_file, cfg.tls_private_key_file
        if cfg.server_tls_bootstrap:
            store = CertStore(cfg.certificate_dir, "kubelet-server")
            client = self.client
            assert client is not None
            self.serving = CertificateManager(store, Template(self.node_name, KUBELET_SERVING, (self.node_name,),
                                                              (self.node_ip,)), lambda: client, self._serving_rotated)
            current = store.current()
            if current is not None:
                return current[1], current[1]
        return bootstrap.ensure_self_signed(cfg.certificate_dir, self.node_name)

    async def _start_api(self, cert_file: str, key_file: str) -> None:
        try:
            from minikubelet.server import KubeletAPI
        except ImportError as e:  # pragma: no cover - the server module is built in parallel
            log.warning("kubelet API not available (%s); running without it", e)
            return
        assert self.runtime is not None and self.client is not None
        self.api = KubeletAPI(server_settings(self.cfg, cert_file, key_file), self.runtime, self.client,
                              self.cfg.kubelet_configuration(), syncloop_health=self._syncloop_health)
        await self.api.start()

    def _syncloop_health(self) -> str | None:
        return self.source.health() if self.source else "the pod sync loop has not started"

    async def _client_rotated(self, path: str) -> None:
        assert self._ssl is not None and self.client is not None
        self._ssl.load_cert_chain(path)
        await self.client.close()  # new connections present the new certificate

    async def _serving_rotated(self, path: str) -> None:
        if self.api is not None:
            self.api.set_serving_cert(path, path)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.workers is not None:
            await self.workers.stop()
        if self.api is not None:
            await self.api.stop()
        if self.runtime is not None:
            await self.runtime.close()
        if self._recorder is not None:
            await self._recorder.close()
        if self.client is not None:
            await self.client.close()
        log.info("kubelet stopped node=%s (pods keep running)", self.node_name)
