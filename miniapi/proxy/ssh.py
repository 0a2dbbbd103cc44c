"""SSHTunnelDialer: the historical apiserver -> node SSH tunnels (``--ssh-user``/``--ssh-keyfile``).

Deprecated in Kubernetes 1.9, removed in 1.22 ("use the apiserver network proxy instead", i.e.
Konnectivity: :mod:`miniapi.konnectivity`). What it did, and what this module does
(old pkg/ssh/ssh.go and pkg/master/tunneler/ssh.go):

1. **One SSH connection per node**, to port 22 of the node's address (ExternalIP; our loopback lab's
   nodes report only an InternalIP, which is taken next), as ``--ssh-user`` (cut to 32 characters),
   authenticated with the ``--ssh-keyfile`` key (generated if missing: :mod:`.sshkeys`).
2. **Every connection to a kubelet, node, pod or service** is a ``direct-tcpip`` channel of one of
   them (:mod:`.sshchannel`): the tunnel of the node whose address is dialled; for a pod IP, the tunnel
   of the node whose podCIDR holds it (ours; the real one went straight to the next rule); otherwise
   a random open tunnel (``SSH tunnel not found for address "...", picking random node``), as any
   node can reach any other.
3. **Health-checked through the tunnel** every minute: ``GET /healthz`` on the kubelet port through
   the node's own tunnel, certificate unchecked; any HTTP answer counts (the historical client did the
   same, on ``127.0.0.1:<read-only port>`` of the node, which in a loopback lab is not the node).
   A failed check closes the tunnel; a closed tunnel (sshd restarted, node rebooted) is re-dialled with
   exponential back-off (1 s .. 30 s, jitter), where the real one re-added it once per health check.
4. **Nodes come and go**: a watch on Nodes adds and removes tunnels (the real one polled every 15 s).
5. **Visible**: one log line per event, and the ``SSH Tunnel Check`` of ``/healthz`` (the historical
   name), failing once a node's tunnel has been down for more than 600 s (``Tunnel sync is taking too
   long: <s>``).

Host keys: :mod:`.sshkeys` (not verified by default, as historically; ``--ssh-known-hosts`` verifies).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncssh

from miniapi.proxy import sshhealth
from miniapi.proxy.errors import ConnectError
from miniapi.proxy.sshchannel import CorkedConnector, open_streams
from miniapi.proxy.sshkeys import AcceptAnyHostKey, HostKeyChangedError, HostKeyPolicy, KnownHosts, ensure_keypair
from miniapi.store import Expired

log = logging.getLogger("miniapi.proxy.ssh")

MAX_USER = 32
# AES-GCM first: cryptography's AESGCM is several times faster than asyncssh's chacha20-poly1305
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com", "aes128-ctr",
           "aes256-ctr")
REASONS = {1: "administratively prohibited", 2: "connect failed", 3: "unknown channel type", 4: "resource shortage"}


class State(enum.Enum):
    CONNECTING = "connecting"
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class SSHOptions:
    user: str
    keyfile: str
    known_hosts: str = ""  # "" = historical: host keys not verified
    port: int = 22
    health_interval: float = 60.0
    max_lag: float = 600.0
    connect_timeout: float = 10.0
    backoff: tuple[float, float] = (1.0, 30.0)


@dataclass(frozen=True)
class NodeTarget:
    """Where a node's tunnel goes, and what it is for."""

    name: str
    address: str
    kubelet_port: int
    pod_cidrs: tuple[str, ...] = ()

    def holds(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
            return any(addr in ipaddress.ip_network(c, strict=False) for c in self.pod_cidrs)
        except ValueError:
            return False


def target_of(node: Mapping[str, Any]) -> NodeTarget | None:
    """ExternalIP, else InternalIP; None if the node reports neither (no tunnel for it yet)."""
    status, spec = node.get("status") or {}, node.get("spec") or {}
    addresses = {a.get("type"): a.get("address") for a in reversed(status.get("addresses") or [])}
    address = addresses.get("ExternalIP") or addresses.get("InternalIP")
    if not address:
        return None
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 10250
    cidrs = tuple(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    return NodeTarget(node["metadata"]["name"], str(address), int(port), cidrs)


class _HostKeyClient(asyncssh.SSHClient):
    def __init__(self, policy: HostKeyPolicy, node: str) -> None:
        self.policy, self.node = policy, node
        self.refusal: HostKeyChangedError | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        try:
            self.policy.check(self.node, addr or host, port, key)
        except HostKeyChangedError as exc:
            self.refusal = exc
            return False
        return True


class Tunnel:
    """One node's SSH connection: opened, watched, health-checked and re-opened until cancelled."""

    def __init__(self, target: NodeTarget, owner: SSHTunnelDialer) -> None:
        self.target, self.owner = target, owner
        self.state = State.CONNECTING
        self.conn: asyncssh.SSHClientConnection | None = None
        self.ok_since = time.monotonic()  # last moment the tunnel was known good (or was added)
        self.error = ""
        self.task: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        return f"{self.target.address}:{self.owner.options.port}"

    def lag(self) -> float:
        return 0.0 if self.state is State.UP else time.monotonic() - self.ok_since

    async def run(self) -> None:
        first, ceiling = self.owner.options.backoff
        delay = first
        while True:
            log.info('Trying to add tunnel to "%s" node=%s', self.where, self.target.name)
            try:
                conn = await self._open()
            except (OSError, asyncssh.Error, TimeoutError, HostKeyChangedError) as exc:
                self.state, self.error = State.DOWN, _text(exc)
                log.error('Failed to open tunnel to "%s" node=%s retry-in=%.1fs: %s', self.where, self.target.name,
                          delay, self.error)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, ceiling)
                continue
            delay, self.conn, self.state, self.error = first, conn, State.UP, ""
            self.ok_since = time.monotonic()
            log.info('Successfully added tunnel for "%s" node=%s cipher=%s', self.where, self.target.name,
                     conn.get_extra_info("send_cipher"))
            try:
                reason = await self._watch(conn)
            finally:
                self.conn = None
                conn.close()
            self.state, self.error, self.ok_since = State.DOWN, reason, time.monotonic()
            log.warning('SSH tunnel down "%s" node=%s: %s; re-dialling', self.where, self.target.name, reason)

    async def _open(self) -> asyncssh.SSHClientConnection:
        opts = self.owner.options
        client = _HostKeyClient(self.owner.host_keys, self.target.name)
        try:
            conn, _ = await asyncio.wait_for(asyncssh.create_connection(
                lambda: client, self.target.address, opts.port, username=self.owner.user,
                client_keys=[self.owner.key], known_hosts=b"", agent_path=None, config=[], preferred_auth="publickey",
                encryption_algs=list(CIPHERS), keepalive_interval=15, keepalive_count_max=3, tunnel=CorkedConnector(),
                connect_timeout=opts.connect_timeout), opts.connect_timeout + 5)
        except asyncssh.HostKeyNotVerifiable:
            if client.refusal is not None:
                raise client.refusal from None
            raise
        return conn

    async def _watch(self, conn: asyncssh.SSHClientConnection) -> str:
        """Until the connection closes or a health check fails; returns why the tunnel went down."""
        closed = asyncio.ensure_future(conn.wait_closed())
        try:
            while True:
                await asyncio.wait({closed}, timeout=self.owner.options.health_interval)
                if closed.done():
                    return "connection closed by the node"
                error = await sshhealth.check(conn, self.target.address, self.target.kubelet_port)
                if error:
                    log.error('Healthcheck failed for tunnel to "%s" node=%s: %s', self.where, self.target.name,
                              error)
                    return f"health check failed: {error}"
                self.ok_since = time.monotonic()
                log.debug('Healthcheck ok for tunnel to "%s" node=%s', self.where, self.target.name)
        finally:
            closed.cancel()


class SSHTunnelDialer:
    """The Dialer over all nodes' SSH tunnels; :meth:`start` watches Nodes, :meth:`stop` closes everything."""

    name = "ssh"

    def __init__(self, options: SSHOptions) -> None:
        self.options = options
        if len(options.user) > MAX_USER:
            log.warning("SSH User is too long, truncating to 32 chars")
        self.user = options.user[:MAX_USER]
        self.host_keys: HostKeyPolicy = KnownHosts(options.known_hosts) if options.known_hosts else AcceptAnyHostKey()
        self.key = ensure_keypair(options.keyfile)
        log.info("Setting up proxy: %s %s host-keys=%s", self.user, options.keyfile,
                 "known-hosts" if options.known_hosts else "NOT-VERIFIED")
        self.tunnels: dict[str, Tunnel] = {}
        if logging.getLogger("asyncssh").level == logging.NOTSET:  # one line per channel otherwise
            logging.getLogger("asyncssh").setLevel(logging.WARNING)
        self._sync_task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------------------
    async def start(self, store: Any) -> None:
        self._sync_task = asyncio.create_task(self._sync(store), name="ssh-tunnel-sync")

    async def stop(self) -> None:
        tasks = [t for t in (self._sync_task, *(x.task for x in self.tunnels.values())) if t is not None]
        for task in tasks:
            task.cancel()
        for tunnel in self.tunnels.values():
            if tunnel.conn is not None:
                tunnel.conn.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
        self.tunnels.clear()

    def health_checks(self) -> dict[str, Callable[[], str | None]]:
        return {"SSH Tunnel Check": self.check}

    def check(self) -> str | None:
        """The /healthz check: fails once a wanted tunnel has been down for more than max_lag seconds."""
        late = [t for t in self.tunnels.values() if t.lag() > self.options.max_lag]
        if not late:
            return None
        worst = max(late, key=Tunnel.lag)
        return (f"Tunnel sync is taking too long: {int(worst.lag())} (node {worst.target.name} at {worst.where}: "
                f"{worst.error or worst.state.value})")

    # -- nodes ------------------------------------------------------------------------------------------
    async def _sync(self, store: Any) -> None:
        while True:
            try:
                items, rev = await store.list("nodes")
                self.reconcile(items)
                async for event in store.watch("nodes", None, rev):
                    name = event.object["metadata"]["name"]
                    current = {n: t.target for n, t in self.tunnels.items()}
                    if event.type == "DELETED":
                        current.pop(name, None)
                        self._apply(current)
                    else:
                        self._apply({**current, name: target_of(event.object)})
            except Expired:
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("ssh tunnel node sync failed; relisting in 1s")
                await asyncio.sleep(1)

    def reconcile(self, nodes: list[Mapping[str, Any]]) -> None:
        self._apply({n["metadata"]["name"]: target_of(n) for n in nodes})

    def _apply(self, wanted: Mapping[str, NodeTarget | None]) -> None:
        for name, tunnel in list(self.tunnels.items()):
            target = wanted.get(name)
            if target is None or target.address != tunnel.target.address:
                log.info('Removing tunnel to deleted node at "%s" node=%s', tunnel.where, name)
                self._close(self.tunnels.pop(name))
            elif target != tunnel.target:
                tunnel.target = target  # port or podCIDR changed: same connection
        for name, target in wanted.items():
            if target is not None and name not in self.tunnels:
                tunnel = self.tunnels[name] = Tunnel(target, self)
                tunnel.task = asyncio.create_task(tunnel.run(), name=f"ssh-tunnel-{name}")

    @staticmethod
    def _close(tunnel: Tunnel) -> None:
        if tunnel.task is not None:
            tunnel.task.cancel()
        if tunnel.conn is not None:
            tunnel.conn.close()

    # -- Dialer -----------------------------------------------------------------------------------------
    def pick(self, host: str) -> Tunnel:
        up = [t for t in self.tunnels.values() if t.state is State.UP and t.conn is not None]
        if not up:
            # the message of the real tunneler, then why each tunnel is down (a host-key refusal included)
            down = sorted(self.tunnels.values(), key=lambda t: t.target.address != host)  # the dialled node first
            why = "; ".join(f"{t.target.name} ({t.where}): {t.error}" for t in down if t.error)
            raise ConnectError(f"No SSH tunnels currently open. Were the targets able to accept an ssh-key for "
                               f'user "{self.user}"?' + (f" {why}" if why else ""))
        for tunnel in up:
            if tunnel.target.address == host:
                return tunnel
        for tunnel in up:
            if tunnel.target.holds(host):
                return tunnel
        log.warning('SSH tunnel not found for address "%s", picking random node', host)
        return random.choice(up)

    async def dial(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        tunnel = self.pick(host)
        assert tunnel.conn is not None
        try:
            streams = await open_streams(tunnel.conn, host, port)
        except asyncssh.ChannelOpenError as exc:
            raise ConnectError(f"ssh: rejected: {REASONS.get(exc.code, str(exc.code))} ({exc.reason})") from exc
        except (asyncssh.Error, OSError) as exc:
            raise ConnectError(f"ssh: tunnel to {tunnel.where}: {_text(exc)}") from exc
        log.debug("dialled %s:%d through the tunnel of node=%s", host, port, tunnel.target.name)
        return streams


def _text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "i/o timeout"
    return str(exc) or type(exc).__name__
