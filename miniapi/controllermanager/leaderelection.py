"""Lease-based leader election (k8s.io/client-go/tools/leaderelection, LeaseLock), so two
controller-managers never both approve, sign and bind.

The lock is the Lease ``kube-system/kube-controller-manager``::

    spec: {holderIdentity: "host_5d1c...", leaseDurationSeconds: 15, acquireTime: ..., renewTime: ...,
           leaseTransitions: 3}

Rules:

1. No Lease: create it naming ourselves (409: someone else just did; retry).
2. Held by another: it is taken over only once ``leaseDurationSeconds`` have passed since *we* last
   saw the record change (our own clock, so the holder's clock does not matter); an empty holder (a
   clean release) is free at once.
3. Taking over bumps ``leaseTransitions`` and sets ``acquireTime``; renewing only moves ``renewTime``.
   Every write is a PUT with the resourceVersion we read, so two candidates cannot both win.
4. Candidates retry every ``--leader-elect-retry-period``; the leader renews at the same pace and
   gives up if no renewal succeeded for ``--leader-elect-renew-deadline``: the process then exits
   (status 1), as kube-controller-manager does on "leaderelection lost".
5. On a clean shutdown the leader releases the Lease (empty holder, duration 1s) so a successor
   need not wait out the lease.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from miniapi.client import ClientError
from miniapi.controllermanager.base import Client, Obj, format_micro_time

log = logging.getLogger("miniapi.controllermanager.leaderelection")

COORD = "coordination.k8s.io"


class LeadershipLost(Exception):
    pass


@dataclass(frozen=True)
class ElectionConfig:
    identity: str
    namespace: str = "kube-system"
    name: str = "kube-controller-manager"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


class LeaderElector:
    def __init__(self, client: Client, cfg: ElectionConfig,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.client, self.cfg, self.clock = client, cfg, clock
        self._observed: tuple[str, float] | None = None  # (record fingerprint, monotonic time seen)
        self.is_leader = False

    async def acquire(self) -> None:
        """Block until we hold the lease (rules 1-4)."""
        log.info("attempting to acquire leader lease %s/%s as %s", self.cfg.namespace, self.cfg.name,
                 self.cfg.identity)
        while True:
            try:
                if await self._try():
                    break
            except Exception as exc:  # apiserver not up yet, 403...: keep trying, say why
                log.warning("error retrieving lease %s/%s: %s", self.cfg.namespace, self.cfg.name, exc)
            await asyncio.sleep(self.cfg.retry_period * random.uniform(1.0, 1.2))
        self.is_leader = True
        log.info("successfully acquired lease %s/%s", self.cfg.namespace, self.cfg.name)

    async def hold(self) -> None:
        """Renew until cancelled; raise LeadershipLost past the renew deadline (rule 4)."""
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.cfg.retry_period)
            try:
                ok = await self._try()
            except Exception as exc:  # keep trying until the deadline
                log.warning("renewing lease failed: %s", exc)
                ok = False
            if ok:
                last_ok = time.monotonic()
            elif time.monotonic() - last_ok > self.cfg.renew_deadline:
                self.is_leader = False
                raise LeadershipLost(f"failed to renew lease {self.cfg.namespace}/{self.cfg.name}: "
                                     f"timed out waiting for the condition")

    async def release(self) -> None:
        """Rule 5."""
        if not self.is_leader:
            return
        try:
            lease = await self.client.get("leases", self.cfg.name, self.cfg.namespace, COORD)
            if (lease.get("spec") or {}).get("holderIdentity") != self.cfg.identity:
                return
            body = copy.deepcopy(lease)
            body["spec"].update(holderIdentity="", leaseDurationSeconds=1,
                                renewTime=format_micro_time(self.clock()))
            await self.client.update("leases", body, self.cfg.namespace, COORD)
            log.info("released lease %s/%s", self.cfg.namespace, self.cfg.name)
        except ClientError as exc:
            log.warning("releasing lease failed: %s", exc)
        finally:
            self.is_leader = False

    async def _try(self) -> bool:
        now = format_micro_time(self.clock())
        try:
            lease = await self.client.get("leases", self.cfg.name, self.cfg.namespace, COORD)
        except ClientError as exc:
            if exc.code != 404:
                raise
            return await self._create(now)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        fingerprint = f"{holder}|{spec.get('renewTime')}|{spec.get('leaseTransitions')}"
        if self._observed is None or self._observed[0] != fingerprint:
            self._observed = (fingerprint, time.monotonic())
        if holder and holder != self.cfg.identity:
            duration = float(spec.get("leaseDurationSeconds") or self.cfg.lease_duration)
            if time.monotonic() - self._observed[1] < duration:
                return False
        body = copy.deepcopy(lease)
        body.setdefault("apiVersion", f"{COORD}/v1")
        body.setdefault("kind", "Lease")
        new = body.setdefault("spec", {})
        if holder != self.cfg.identity:
            new.update(acquireTime=now, leaseTransitions=int(spec.get("leaseTransitions") or 0) + 1)
            if holder:
                log.info("lease %s/%s held by %s expired, taking over", self.cfg.namespace, self.cfg.name, holder)
        new.update(holderIdentity=self.cfg.identity, leaseDurationSeconds=int(self.cfg.lease_duration),
                   renewTime=now)
        try:
            await self.client.update("leases", body, self.cfg.namespace, COORD)
        except ClientError as exc:
            if exc.code == 409:
                return False
            raise
        return True

    async def _create(self, now: str) -> bool:
        lease: Obj = {"apiVersion": f"{COORD}/v1", "kind": "Lease",
                      "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
                      "spec": {"holderIdentity": self.cfg.identity,
                               "leaseDurationSeconds": int(self.cfg.lease_duration),
                               "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
        try:
            await self.client.create("leases", lease, self.cfg.namespace, COORD)
        except ClientError as exc:
            if exc.code == 409:
                return False
            raise
        return True
