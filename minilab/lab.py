"""The lab's verbs: ``up``, ``down``, ``status``, ``restart_node``, ``restart_apiserver``.

``up``, in the order a kubeadm cluster comes up, but overlapped where the real components cope:

1. PKI (minipki's ``init_pki``, EC keys: kubeadm's layout, node serving certs naming the node IPs).
2. Start the apiserver, the controller-manager, the kube-proxy (one for the host) and the kubelets of
   the pre-made nodes at once: the others retry until the apiserver answers, as the real ones do;
   their imports overlap its start.
3. Wait for ``/readyz`` (as the admin). Then, for each node joined by bootstrap token, create the
   Secret ``kube-system/bootstrap-token-<id>`` as the admin (what ``kubeadm token create`` does) and start
   its kubelet with only ``bootstrap-kubelet.conf``; the controller-manager approves and signs its CSR.
4. Watch the Nodes until every one is Ready with a podCIDR; with ``--tunnel ssh|konnectivity``
   (tunnelmode.py: the nodes' sshd, or the proxy server and agents, start before the apiserver),
   wait until every node's tunnel is up.

Every started process is recorded in ``lab.json`` at once, so ``down`` can clean up after a failed
``up``. ``up`` on a running lab starts only what is not running (and says so).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from minilab import commands, procs, tunnelmode
from minilab.profiles import Level, resolve
from minilab.state import LabDir, LabState, NodeSpec, ProcInfo, Settings
from minilab.waits import (
    APISERVER,
    KCM,
    KUBE_PROXY,
    LabError,
    ensure_bootstrap_secret,
    kubelet_key,
    wait_apiserver,
    wait_nodes_ready,
)

Out = Callable[[str], None]


@dataclass(frozen=True)
class UpOptions:
    nodes: int = 2
    join: tuple[str, ...] = ()
    settings: Settings = Settings()
    first_node_ip: str = "127.0.0.2"
    kubelet_port: int = 10250
    read_only_port: int = 10255
    timeout: float = 60.0


# --- up -------------------------------------------------------------------------------------------


def up(lab: LabDir, opts: UpOptions, out: Out = print) -> LabState:
    levels = resolve(opts.settings.profile, opts.settings.overrides)
    state = _merge(lab, opts, out)
    api = state.procs.get(APISERVER)
    s = state.settings
    if (api is None or not procs.alive(api)) and not procs.port_free(s.address, s.port):
        raise LabError(f"{s.address}:{s.port} is taken (another apiserver or lab?); stop it or pick another --port")
    lab.save(state)
    from pki.errors import PkiError
    from pki.init import init_pki

    premade = [n for n in state.nodes if not n.joined]
    try:
        init_pki(lab.root, apiserver_url=state.settings.url, nodes=[n.name for n in premade],
                 node_ips={n.name: n.ip for n in premade}, key_type=state.settings.key_type,  # type: ignore[arg-type]
                 service_cidr=state.settings.service_cidr)
    except PkiError as e:
        raise LabError(f"PKI in {lab.root}: {e}") from None
    tunnel = _start_tunnels(lab, state, levels, out)
    _ensure(lab, state, APISERVER, commands.apiserver(lab, state.settings, levels, tunnel), state.settings.url, out)
    _ensure(lab, state, KCM, commands.controller_manager(lab, state.settings), "", out)
    if state.nodes:
        _ensure(lab, state, KUBE_PROXY, commands.kube_proxy(lab, state.settings, state.nodes[0].name), "", out)
    for node in premade:
        _ensure_kubelet(lab, state, node, levels, out)
    asyncio.run(_converge(lab, state, levels, opts.timeout, out))
    return state


def _start_tunnels(lab: LabDir, state: LabState, levels: dict[str, Level], out: Out) -> list[str]:
    """``--tunnel ssh``: the nodes' sshd; ``konnectivity``: the proxy server and agents. Returns the
    apiserver's flags for the mode."""
    mode = state.settings.tunnel
    if mode == "ssh":
        port = state.settings.ssh_port
        flags = tunnelmode.prepare_ssh(lab, state, levels)
        for node in state.nodes:
            _ensure(lab, state, tunnelmode.sshd_key(node.name), tunnelmode.sshd_argv(lab, node, port),
                    f"ssh://{node.ip}:{port}", out)
        for node in state.nodes:
            tunnelmode.wait_sshd(node, port)
        return flags
    if mode == "konnectivity":
        pki, flags = tunnelmode.prepare_konnectivity(lab, state)
        _ensure(lab, state, tunnelmode.SERVER, tunnelmode.konnectivity_server_argv(pki, state),
                f"unix:{pki.socket} agents:127.0.0.1:{tunnelmode.konnectivity_ports(state)[0]}", out)
        for node in state.nodes:
            _ensure(lab, state, tunnelmode.agent_key(node.name), tunnelmode.konnectivity_agent_argv(pki, state, node),
                    "", out)
        return flags
    return []


def _merge(lab: LabDir, opts: UpOptions, out: Out) -> LabState:
    """The lab to bring up: the recorded one if it runs (same settings required), plus what is asked."""
    old = lab.load()
    running = old is not None and any(procs.alive(p) for p in old.procs.values())
    if old is not None and running and old.settings != opts.settings:
        raise LabError(f"the lab in {lab.root} is running with {_describe(old.settings)}, not "
                       f"{_describe(opts.settings)}; run `minilab down --dir {lab.root}` first")
    state = LabState(opts.settings, list(old.nodes) if old else [], dict(old.procs) if old and running else {})
    wanted = [(f"node{i}", False) for i in range(1, opts.nodes + 1)] + [(name, True) for name in opts.join]
    for name, joined in wanted:
        have = state.node(name)
        if have is not None and have.joined != joined and running:
            raise LabError(f"node {name} already exists (joined={have.joined}); pick another name")
        if have is None or not running:
            ip = have.ip if have else _next_ip(opts.first_node_ip, [n.ip for n in state.nodes])
            spec = _ports(NodeSpec(name, ip, joined=joined), opts, out)
            state.nodes = [n for n in state.nodes if n.name != name] + [spec]
    names = {name for name, _ in wanted}
    if not running:  # a fresh start runs exactly the nodes asked for
        state.nodes = [n for n in state.nodes if n.name in names]
    if state.settings.tunnel == "ssh":  # one port for every node's sshd (the apiserver's --ssh-port)
        port = old.settings.ssh_port if old is not None and running and old.settings.ssh_port else 0
        state.settings = replace(state.settings, ssh_port=port or tunnelmode.pick_port(state))
    return state


def _describe(s: Settings) -> str:
    sets = f" --set {','.join(s.overrides)}" if s.overrides else ""
    return f"--profile {s.profile}{sets} --port {s.port} --tunnel {s.tunnel}"


def _next_ip(first: str, taken: list[str]) -> str:
    ip = ipaddress.IPv4Address(first)
    while str(ip) in taken:
        ip += 1
    if not ip.is_loopback:
        raise LabError(f"{ip} is not a loopback address; the lab never leaves 127.0.0.0/8")
    return str(ip)


def _ports(node: NodeSpec, opts: UpOptions, out: Out) -> NodeSpec:
    levels = resolve(opts.settings.profile, opts.settings.overrides)
    port = _port(node.ip, opts.kubelet_port, node.name, "--port", out)
    ro = 0
    if levels["kubelet-readonly"] is Level.INSECURE:
        ro = _port(node.ip, opts.read_only_port, node.name, "--read-only-port", out)
    return replace(node, port=port, read_only_port=ro)


def _port(ip: str, wanted: int, node: str, flag: str, out: Out) -> int:
    if procs.port_free(ip, wanted):
        return wanted
    port = procs.free_port(ip)
    out(f"note: {ip}:{wanted} is taken; {node} uses kubelet {flag} {port} instead")
    return port


def _ensure(lab: LabDir, state: LabState, key: str, argv: list[str], address: str, out: Out) -> None:
    info = state.procs.get(key)
    if info is not None and procs.alive(info):
        out(f"{key} already running (pid {info.pid})")
        return
    state.procs[key] = procs.spawn(argv, lab.log(key), address, lab.root)
    lab.save(state)


def _ensure_kubelet(lab: LabDir, state: LabState, node: NodeSpec, levels: dict[str, Level], out: Out) -> None:
    where = f"https://{node.ip}:{node.port}" + (f" http://{node.ip}:{node.read_only_port}"
                                                if node.read_only_port else "")
    _ensure(lab, state, kubelet_key(node.name), commands.kubelet(lab, node, levels), where, out)


async def _converge(lab: LabDir, state: LabState, levels: dict[str, Level], timeout: float, out: Out) -> None:
    from miniapi.client import KubeClient

    async with asyncio.timeout(timeout), KubeClient.from_kubeconfig(lab.admin_conf, timeout=5) as kc:
        try:
            await wait_apiserver(kc, lab, state)
            joined = [n for n in state.nodes if n.joined]
            if joined:
                await ensure_bootstrap_secret(kc, lab)
                for node in joined:
                    _ensure_kubelet(lab, state, node, levels, out)
            await wait_nodes_ready(kc, lab, state, [n.name for n in state.nodes])
            await tunnelmode.wait_tunnels(state)
        except TimeoutError:
            late = tunnelmode.tunnels_up(state)
            raise LabError(f"the lab did not come up within {timeout:.0f}s"
                           f"{'; tunnels not up: ' + ', '.join(late) if late else ''}; see the logs in {lab.logs}; "
                           f"`minilab --dir {lab.root} down` stops what did start") from None


# --- down, status, restarts ------------------------------------------------------------------------


LINGER_SECONDS = 5.0  # how long down waits for processes it signalled to be gone before it warns


def down(lab: LabDir, out: Out = print) -> None:
    """Stop the kubelets first (no new container starts after that), then the controller-manager and
    kube-proxy, then the apiserver; then kill the pods' processes and their shims (including a shim the
    kubelet had just started for a container restart) and wait until they are gone."""
    from minikubelet.podstate import kill_all

    state = lab.load()
    running = {k: p for k, p in (state.procs if state else {}).items() if procs.alive(p)}
    kubelets = [p for k, p in running.items() if k.startswith("kubelet/")]
    others = [running[k] for k in (KCM, KUBE_PROXY) if k in running]
    agents = [p for k, p in running.items() if k.startswith("konnectivity-agent/")]
    tunnels = [p for k, p in running.items() if tunnelmode.is_tunnel_proc(k) and p not in agents]
    for batch in (kubelets + agents, others,  # no kubelet left to restart a pod once the others stop
                  [running[APISERVER]] if APISERVER in running else [],
                  procs.with_descendants(tunnels)):  # sshd: its connections' children too
        for p in procs.stop(batch):
            out(f"pid {p.pid} did not stop on SIGTERM; killed")
    pods = 0
    root = lab.root / "kubelet"
    for node_root in sorted(root.iterdir()) if root.is_dir() else ():
        pods += kill_all(str(node_root))
    if state is not None:
        state.procs = {}
        lab.save(state)
    what = f"stopped {len(running)} process(es)" if running else "nothing was running"
    out(f"{what}; killed {pods} pod process(es)" if pods else what)
    left = procs.lingering(str(lab.root), wait=LINGER_SECONDS)
    if left:
        out(f"warning: still running with {lab.root} in their command line: pids {left}")


@dataclass(frozen=True)
class ProcStatus:
    key: str
    info: ProcInfo
    alive: bool


def processes(lab: LabDir) -> list[ProcStatus]:
    state = lab.load()
    return [ProcStatus(k, p, procs.alive(p)) for k, p in (state.procs if state else {}).items()]


def restart_node(lab: LabDir, name: str, timeout: float = 30.0, out: Out = print) -> None:
    state = _running_state(lab)
    node = state.node(name)
    if node is None:
        raise LabError(f"no node {name} in {lab.root}; nodes: {', '.join(n.name for n in state.nodes)}")
    key = kubelet_key(name)
    _restart(lab, state, key, out)
    started = time.time()
    asyncio.run(_wait_restarted_node(lab, state, name, started, timeout))
    out(f"{key} restarted (pid {state.procs[key].pid}); node {name} is posting Ready")


async def _wait_restarted_node(lab: LabDir, state: LabState, name: str, since: float, timeout: float) -> None:
    from miniapi.client import KubeClient

    async with asyncio.timeout(timeout), KubeClient.from_kubeconfig(lab.admin_conf, timeout=5) as kc:
        await wait_nodes_ready(kc, lab, state, [name], newer_than=since)


def restart_apiserver(lab: LabDir, timeout: float = 30.0, out: Out = print) -> None:
    state = _running_state(lab)
    _restart(lab, state, APISERVER, out)

    async def ready() -> None:
        from miniapi.client import KubeClient

        async with asyncio.timeout(timeout), KubeClient.from_kubeconfig(lab.admin_conf, timeout=5) as kc:
            await wait_apiserver(kc, lab, state)

    asyncio.run(ready())
    out(f"apiserver restarted (pid {state.procs[APISERVER].pid}); the store in {lab.data} was kept")


def _running_state(lab: LabDir) -> LabState:
    state = lab.load()
    if state is None or not state.procs:
        raise LabError(f"no lab is running in {lab.root}; run `minilab up --dir {lab.root}`")
    return state


def _restart(lab: LabDir, state: LabState, key: str, out: Out) -> None:
    old = state.procs[key]
    if procs.alive(old):
        procs.stop([old])
    else:
        out(f"{key} (pid {old.pid}) was not running")
    state.procs[key] = procs.spawn(old.argv, Path(old.log), old.address, lab.root)
    lab.save(state)
