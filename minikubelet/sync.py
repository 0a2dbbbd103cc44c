"""The kubelet's sync loop: pods bound to this node in, reconciled by one worker per pod.

1. :class:`PodSource` LISTs ``pods?fieldSelector=spec.nodeName=NAME`` (all namespaces), then WATCHes
   from that resourceVersion, re-watching when the server ends the stream and re-listing on
   ``410 Expired`` or a broken connection (client-go's reflector, pkg/kubelet/config/apiserver.go).
2. :class:`PodWorkers` keeps one :class:`PodWorker` per pod UID (pkg/kubelet/pod_workers.go). A
   worker wakes on a watch event, a container exit reported by the runtime, the end of a back-off,
   or every ``--sync-frequency``; each time it asks :func:`reconcile.plan` what to do, does it
   through the runtime, and PATCHes ``pods/NAME/status`` when the computed status changed.
3. Pods the runtime has but the apiserver no longer lists (deleted while the kubelet was down) get
   a worker too, which stops their processes and forgets them.
4. Volumes (volumes.py) are set up before the first container starts and again on every sync once
   ``--sync-frequency`` has passed (token refresh, ConfigMap updates); a failed set-up records
   ``FailedMount`` and is retried with back-off (0.5 s doubling to 2m2s), containers not started
   meanwhile. They are torn down once nothing runs: before the final delete, or when the pod is
   Succeeded/Failed.
5. Every container gets the service-link variables (env.py rule 6) from the kubelet's service
   informer; until it has listed once, containers wait with ``CreateContainerConfigError``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp

from miniapi.client import ClientError, KubeClient, resource_path
from minikubelet import reconcile, status
from minikubelet.env import ContainerConfigError, command_line, container_env, service_env
from minikubelet.events import Recorder
from minikubelet.reconcile import BackOffEntry, BackOffPolicy, ContainerObservation, Waiting
from minikubelet.runtime import ProcessRuntime
from minikubelet.token import TokenManager
from minikubelet.volumes import VolumeError, VolumeManager, container_mounts

log = logging.getLogger("minikubelet.sync")
Obj = dict[str, Any]
_NET_ERRORS = (aiohttp.ClientError, OSError, TimeoutError, ValueError)
MOUNT_BACKOFF_INITIAL, MOUNT_BACKOFF_MAX = 0.5, 122.0  # nestedpendingoperations' exponential back-off
NO_SERVICES = "services have not yet been read at least once, cannot construct envvars"


class ServiceLister(Protocol):
    """The kubelet's service informer (miniapi.controllermanager.informer.Informer fits)."""

    @property
    def has_synced(self) -> bool: ...

    def items(self) -> list[Obj]: ...


class PodWorker:
    def __init__(self, workers: PodWorkers, pod: Obj, removed: bool = False) -> None:
        self.w, self.pod, self.removed = workers, pod, removed
        self.uid = str(reconcile.meta(pod).get("uid", ""))
        self.wake = asyncio.Event()
        self.blocked: dict[str, tuple[Waiting, float]] = {}
        self.last_status: Obj | None = None
        self.deleted = False
        self.backoff_events: set[tuple[str, int]] = set()
        self.volume_paths: dict[str, str] | None = None  # set up: volume name -> host directory
        self.volumes_at = 0.0
        self.mount_retry_at, self.mount_delay = 0.0, 0.0

    def _observe(self) -> dict[str, ContainerObservation]:
        out = self.w.runtime.observe(self.uid)
        for name, (why, at) in self.blocked.items():
            o = out.get(name, reconcile.NOTHING)
            out[name] = ContainerObservation(o.current, o.previous, why, at)
        return out

    async def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                result = await self.sync()
            except (ClientError, *_NET_ERRORS) as e:
                log.warning("error syncing pod %s, will retry: %s", reconcile.pod_ref(self.pod), e)
                result = self.w.clock() + 1.0
            except Exception:  # a bug for one pod must not stop its worker for good
                log.exception("unexpected error syncing pod %s, will retry", reconcile.pod_ref(self.pod))
                result = self.w.clock() + 1.0
            if result is True:
                return
            if result is None:
                continue
            timeout = min(max(0.0, result - self.w.clock()), self.w.sync_frequency) if result else \
                self.w.sync_frequency
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass

    async def sync(self) -> bool | float | None:
        """One pass. True: done (forgotten); None: acted, look again now; a float: next wake-up (0: none)."""
        w, pod, uid = self.w, self.pod, self.uid
        deleting = self.removed or bool(reconcile.meta(pod).get("deletionTimestamp"))
        terminal = (pod.get("status") or {}).get("phase") in reconcile.TERMINAL_PHASES
        if not deleting and not terminal and not w.runtime.known(uid):
            w.runtime.ensure_pod(pod, w.pod_ip_for(pod))
        base = dict(pod, status=self.last_status or pod.get("status") or {})
        plan = reconcile.plan(base, self._observe(), removed=self.removed, now=w.clock(), backoff=w.backoff,
                              policy=w.policy)
        w.backoff.update(plan.backoff)
        mount_retry = None if deleting or terminal else await self._mount_volumes()
        acted = False
        for action in plan.actions:
            if isinstance(action, reconcile.StartContainer) and mount_retry is None:
                await self._start(action)
                acted = True
            elif isinstance(action, reconcile.KillPod):
                for c in (pod.get("spec") or {}).get("containers") or ():
                    w.recorder.record(pod, str(c.get("name")), "Normal", "Killing",
                                      f"Stopping container {c.get('name')}")
                await w.runtime.kill(uid, action.grace_seconds)
                acted = True
        if acted:
            return None
        if w.runtime.known(uid) and not self.removed:
            await self._post_status(base, plan)
            if (self.last_status or {}).get("phase") in reconcile.TERMINAL_PHASES:
                self._unmount_volumes()
        for action in plan.actions:
            if isinstance(action, reconcile.DeletePod) and not self.deleted:
                self._unmount_volumes()
                await self._delete()
            elif isinstance(action, reconcile.Forget):
                self._unmount_volumes()
                w.runtime.forget(uid)
                for key in [k for k in w.backoff if k.startswith(uid + "/")]:
                    del w.backoff[key]
                log.info("pod %s forgotten", reconcile.pod_ref(pod))
                return True
        if mount_retry is not None:
            return min(plan.next_sync, mount_retry) if plan.next_sync else mount_retry
        return plan.next_sync or 0.0

    async def _mount_volumes(self) -> float | None:
        """Rule 4: None when the containers may start, else when to try again."""
        w, now = self.w, self.w.clock()
        if not w.runtime.known(self.uid) or self.removed:
            return None
        if self.volume_paths is not None and now - self.volumes_at < 0.9 * w.sync_frequency:
            return None
        if now < self.mount_retry_at:
            return None if self.volume_paths is not None else self.mount_retry_at
        try:
            self.volume_paths = await w.volumes.setup(self.pod, w.runtime.pod_dir(self.uid), w.runtime.pod_ip(self.uid))
        except VolumeError as e:
            self.mount_delay = min(max(MOUNT_BACKOFF_INITIAL, self.mount_delay * 2), MOUNT_BACKOFF_MAX)
            self.mount_retry_at = now + self.mount_delay
            w.recorder.record(self.pod, "", "Warning", "FailedMount", str(e))
            log.warning("pod %s: %s", reconcile.pod_ref(self.pod), e)
            return None if self.volume_paths is not None else self.mount_retry_at
        self.volumes_at, self.mount_delay = now, 0.0
        return None

    def _unmount_volumes(self) -> None:
        if self.w.runtime.known(self.uid) and (self.volume_paths is not None or self.mount_delay):
            self.w.volumes.teardown(self.w.runtime.pod_dir(self.uid), self.uid)
            log.info("volumes of pod %s torn down", reconcile.pod_ref(self.pod))
        self.volume_paths = None

    async def _start(self, action: reconcile.StartContainer) -> None:
        w, pod, name = self.w, self.pod, action.name
        spec = pod.get("spec") or {}
        container = next(c for kind in ("initContainers", "containers") for c in spec.get(kind) or ()
                         if c.get("name") == name)
        workdir = w.runtime.workdir(self.uid)
        pod_ip = w.runtime.pod_ip(self.uid)
        try:
            env = await container_env(pod, container, host_ip=w.host_ip, pod_ip=pod_ip, workdir=workdir,
                                      fetch=w.fetch, services=w.service_env(pod))
            mounts = container_mounts(pod, container, self.volume_paths or {})
        except ContainerConfigError as e:
            self.blocked[name] = (Waiting("CreateContainerConfigError", str(e)), w.clock())
            w.recorder.record(pod, name, "Warning", "Failed", f"Error: {e}")
            return
        self.blocked.pop(name, None)
        await w.runtime.start(self.uid, name, action.restart_count, command_line(container, env), env,
                              str(container.get("workingDir") or workdir), mounts,
                              stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")))
        cur = w.runtime.observe(self.uid)[name].current
        if cur is not None and cur.reason == reconcile.START_ERROR:
            w.recorder.record(pod, name, "Warning", "Failed", f"Error: {cur.message}")
        else:
            w.recorder.record(pod, name, "Normal", "Created", f"Created container: {name}")
            w.recorder.record(pod, name, "Normal", "Started", f"Started container {name}")

    async def _post_status(self, base: Obj, plan: reconcile.Plan) -> None:
        w = self.w
        new = status.pod_status(base, self._observe(), plan.waiting, host_ip=w.host_ip,
                                pod_ip=w.runtime.pod_ip(self.uid), start_time=w.runtime.start_time(self.uid),
                                now=w.clock(), terminating=plan.terminating)
        w.runtime.set_view(self.uid, dict(self.pod, status=new))
        if new == self.last_status:
            return
        observed = self._observe()
        for name, why in plan.waiting.items():
            cur = observed.get(name, reconcile.NOTHING).current
            mark = (name, cur.restart_count if cur else -1)
            if why.reason == "CrashLoopBackOff" and mark not in self.backoff_events:
                self.backoff_events.add(mark)
                w.recorder.record(self.pod, name, "Warning", "BackOff", f"Back-off restarting failed container {name} "
                                  f"in pod {reconcile.pod_ref(self.pod)}")
        m = reconcile.meta(self.pod)
        try:
            await w.client.patch("pods", str(m.get("name")), {"status": new}, str(m.get("namespace")),
                                 subresource="status")
        except ClientError as e:
            if e.code == 404:
                self.removed = True
                return
            raise
        self.last_status = new
        log.info("status posted pod=%s phase=%s", reconcile.pod_ref(self.pod), new["phase"])

    async def _delete(self) -> None:
        m = reconcile.meta(self.pod)
        path = resource_path("pods", str(m.get("namespace")), str(m.get("name")))
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": self.uid}}
        try:
            await self.w.client.request("DELETE", path, body)
        except ClientError as e:
            if e.code not in (404, 409):
                raise
        self.deleted = True
        log.info("pod %s deleted from the apiserver", reconcile.pod_ref(self.pod))


class PodWorkers:
    """One worker per pod UID (rule 2 and 3)."""

    def __init__(self, client: KubeClient, runtime: ProcessRuntime, recorder: Recorder, *, host_ip: str,
                 pod_cidr: Callable[[], str], policy: BackOffPolicy = reconcile.DEFAULT_BACKOFF,
                 sync_frequency: float = 60.0, clock: Callable[[], float] = time.time,
                 services: ServiceLister | None = None) -> None:
        self.client, self.runtime, self.recorder = client, runtime, recorder
        self.services = services
        self.tokens = TokenManager(self.request_token, clock)
        self.volumes = VolumeManager(self.fetch, self.tokens, host_ip)
        self.host_ip, self.pod_cidr, self.policy = host_ip, pod_cidr, policy
        self.sync_frequency, self.clock = sync_frequency, clock
        self.backoff: dict[str, BackOffEntry] = {}
        self.workers: dict[str, PodWorker] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        runtime.on_change = self.poke

    def pod_ip_for(self, pod: Obj) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return self.host_ip
        cidr = self.pod_cidr()
        return self.runtime.allocate_ip(cidr) if cidr else self.host_ip

    async def fetch(self, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            return await self.client.get(resource, name, namespace)
        except ClientError as e:
            if e.code == 404:
                return None
            raise ContainerConfigError(f"cannot read {resource} {namespace}/{name}: {e.message}") from None

    async def request_token(self, namespace: str, service_account: str, body: Obj) -> Obj:
        """POST serviceaccounts/NAME/token (token.py rule 1)."""
        return await self.client.create("serviceaccounts", body, namespace, name=service_account, subresource="token")

    def service_env(self, pod: Obj) -> dict[str, str]:
        """Rule 5; ContainerConfigError until the service informer has listed once."""
        if self.services is None:
            return {}
        if not self.services.has_synced:
            raise ContainerConfigError(NO_SERVICES)
        spec = pod.get("spec") or {}
        return service_env(self.services.items(), str(reconcile.meta(pod).get("namespace", "")),
                           spec.get("enableServiceLinks") is not False)

    def poke(self, uid: str) -> None:
        worker = self.workers.get(uid)
        if worker is not None:
            worker.wake.set()

    def update(self, type_: str, pod: Obj) -> None:
        uid = str(reconcile.meta(pod).get("uid", ""))
        worker = self.workers.get(uid)
        if worker is None:
            if type_ == "DELETED" and not self.runtime.known(uid):
                return
            worker = self.workers[uid] = PodWorker(self, pod)
            task = asyncio.ensure_future(self._run(worker))
            self._tasks[uid] = task
        worker.pod = pod
        worker.removed = worker.removed or type_ == "DELETED"
        worker.wake.set()

    async def _run(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        finally:
            self.workers.pop(worker.uid, None)
            self._tasks.pop(worker.uid, None)

    def replace(self, pods: list[Obj]) -> None:
        """After a (re)list: the listed pods, and removal for every other pod we know."""
        listed = set()
        for pod in pods:
            listed.add(str(reconcile.meta(pod).get("uid", "")))
            self.update("ADDED", pod)
        for uid, worker in list(self.workers.items()):
            if uid not in listed:
                self.update("DELETED", worker.pod)
        for uid in self.runtime.uids():
            if uid not in listed and uid not in self.workers:
                view = self.runtime.find_uid(uid)
                if view is not None:
                    log.info("pod %s/%s is no longer bound to this node; stopping it", view.namespace, view.name)
                    self.update("DELETED", view.pod)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class PodSource:
    """Rule 1: list + watch of this node's pods into the workers."""

    def __init__(self, client: KubeClient, node_name: str, workers: PodWorkers, watch_timeout: int = 300) -> None:
        self.client, self.node_name, self.workers, self.watch_timeout = client, node_name, workers, watch_timeout
        self.synced = asyncio.Event()

    def health(self) -> str | None:
        return None if self.synced.is_set() else "the pod sync loop has not listed pods yet"

    async def run(self) -> None:
        selector = f"spec.nodeName={self.node_name}"
        delay = 0.1
        while True:
            try:
                lst = await self.client.list("pods", fieldSelector=selector)
                self.workers.replace(list(lst.get("items") or ()))
                self.synced.set()
                rv = str((lst.get("metadata") or {}).get("resourceVersion", ""))
                delay = 0.1
                while True:
                    async for event in self.client.watch("pods", resource_version=rv, fieldSelector=selector,
                                                         timeout_seconds=self.watch_timeout):
                        obj = event.get("object") or {}
                        rv = str(reconcile.meta(obj).get("resourceVersion", rv))
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            self.workers.update(str(event["type"]), obj)
            except ClientError as e:
                if e.code == 410:
                    log.info("pod watch expired (410), re-listing")
                    continue
                log.warning("pod list/watch failed: %s", e)
            except _NET_ERRORS as e:
                log.warning("pod list/watch interrupted: %s", e or type(e).__name__)
            except Exception:  # keep syncing whatever happened
                log.exception("pod list/watch failed unexpectedly")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
