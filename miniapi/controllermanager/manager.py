"""The controller-manager process: one client, one set of shared informers, the enabled controllers.

Start-up, as kube-controller-manager does it:

1. Build the client from ``--kubeconfig`` (TLS to the secure port, client certificate
   CN=system:kube-controller-manager; RBAC role ``system:kube-controller-manager`` grants the rest).
2. With ``--leader-elect`` (the default), wait to hold the Lease ``kube-system/kube-controller-manager``;
   keep renewing it while running; losing it stops the process with status 1.
3. Construct each enabled controller (``--controllers``); one whose inputs are missing is skipped with
   a log line: csrsigning without ``--cluster-signing-*``, nodeipam without ``--allocate-node-cidrs``.
4. Start the informers the controllers asked for, then the controllers (each waits for its caches).
5. Stop (SIGTERM/SIGINT, or a controller crashing): cancel everything, release the Lease, close the
   client. A crash is logged and makes the exit status 1.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from miniapi.client import KubeClient
from miniapi.controllermanager.base import Client, Controller, ControllerContext
from miniapi.controllermanager.config import Config, format_duration
from miniapi.controllermanager.csrapproving import CSRApprovingController
from miniapi.controllermanager.csrsigning import CSRSigningController
from miniapi.controllermanager.endpoints import EndpointController
from miniapi.controllermanager.events import EventRecorder
from miniapi.controllermanager.informer import InformerFactory
from miniapi.controllermanager.leaderelection import ElectionConfig, LeaderElector, LeadershipLost
from miniapi.controllermanager.nodeipam import NodeIPAMController
from miniapi.controllermanager.nodelifecycle import NodeLifecycleController
from miniapi.controllermanager.rootcacertpublisher import RootCACertPublisher
from miniapi.controllermanager.scheduler import Scheduler
from miniapi.controllermanager.serviceaccount import ServiceAccountsController
from pki.files import read_cert, read_client_config, read_key

log = logging.getLogger("miniapi.controllermanager")

USER_AGENT = "kube-controller-manager/v1.37.0 (linux/amd64) miniapi"


def _csrsigning(ctx: ControllerContext) -> Controller | None:
    cfg = ctx.config
    if not cfg.cluster_signing_cert_file:
        log.info("csrsigning: skipped: no --cluster-signing-cert-file/--cluster-signing-key-file")
        return None
    return CSRSigningController(ctx, read_cert(Path(cfg.cluster_signing_cert_file)),
                                read_key(Path(cfg.cluster_signing_key_file)))


def _root_ca(ctx: ControllerContext) -> Controller | None:
    cfg = ctx.config
    if cfg.root_ca_file:
        with open(cfg.root_ca_file) as f:
            ca = f.read()
    else:
        ca_pem = read_client_config(Path(cfg.kubeconfig)).ca_pem
        if not ca_pem:
            log.info("root-ca-cert-publisher: skipped: no --root-ca-file and no CA in --kubeconfig")
            return None
        ca = ca_pem.decode()
    return RootCACertPublisher(ctx, ca)


def _nodeipam(ctx: ControllerContext) -> Controller | None:
    if not ctx.config.allocate_node_cidrs:
        log.info("nodeipam: skipped: --allocate-node-cidrs=false")
        return None
    return NodeIPAMController(ctx)


BUILDERS: dict[str, Callable[[ControllerContext], Controller | None]] = {
    "csrapproving": CSRApprovingController,
    "csrsigning": _csrsigning,
    "serviceaccount": ServiceAccountsController,
    "root-ca-cert-publisher": _root_ca,
    "nodelifecycle": NodeLifecycleController,
    "nodeipam": _nodeipam,
    "endpoint": EndpointController,
    "scheduler": Scheduler,
}


def build_controllers(ctx: ControllerContext) -> list[Controller]:
    """Rule 3."""
    out = []
    for name in ctx.config.enabled:
        controller = BUILDERS[name](ctx)
        if controller is not None:
            out.append(controller)
    return out


async def run(cfg: Config, stop: asyncio.Event, client: Client | None = None) -> int:
    """Run until ``stop`` is set (0) or something fails (1)."""
    kube: KubeClient | None = None
    if client is None:
        kube = client = KubeClient.from_kubeconfig(cfg.kubeconfig, user_agent=USER_AGENT)
    api: Client = client
    identity = f"{socket.gethostname()}_{uuid.uuid4()}"
    elector = LeaderElector(api, ElectionConfig(identity, lease_duration=cfg.leader_elect_lease_duration,
                                                renew_deadline=cfg.leader_elect_renew_deadline,
                                                retry_period=cfg.leader_elect_retry_period))
    tasks: list[asyncio.Task[None]] = []
    try:
        if cfg.leader_elect:
            if not await _until_stopped(elector.acquire(), stop):
                return 0
            tasks.append(asyncio.create_task(elector.hold(), name="leader election"))
        else:
            log.info("leader election disabled (--leader-elect=false): make sure only one instance runs")
        return await _run_controllers(cfg, api, stop, tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await elector.release()
        if kube is not None:
            await kube.close()


async def _run_controllers(cfg: Config, api: Client, stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> int:
    informers = InformerFactory(api)
    ctx = ControllerContext(api, informers, cfg, lambda component: EventRecorder(api, component))
    controllers = build_controllers(ctx)
    tasks += informers.start()
    tasks += [asyncio.create_task(c.run(), name=c.name) for c in controllers]
    log.info("started controllers: %s (node-monitor-grace-period %s)", ", ".join(c.name for c in controllers),
             format_duration(cfg.node_monitor_grace_period))
    stopper = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if stopper in done:
        log.info("shutting down")
        return 0
    for task in done:
        exc = task.exception() if not task.cancelled() else None
        if isinstance(exc, LeadershipLost):
            log.error("leaderelection lost: %s", exc)
        else:
            log.error("%s stopped unexpectedly: %r", task.get_name(), exc)
    return 1


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` comes first; True if the work finished."""
    job = asyncio.create_task(work)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([job, stopper], return_when=asyncio.FIRST_COMPLETED)
    for task in (job, stopper):
        if task not in done:
            task.cancel()
    await asyncio.gather(job, stopper, return_exceptions=True)
    return job in done and not job.cancelled() and job.exception() is None
