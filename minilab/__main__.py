"""``minilab`` / ``python -m minilab``: a whole cluster of local processes with one command.

    minilab up [--nodes 2] [--profile insecure|hardened] [--set PATH=LEVEL] [--dir _run/lab] [--port 6443]
               [--tunnel direct|ssh|konnectivity] [--join-with-bootstrap-token NAME]...
    minilab status | down | env | profiles
    minilab restart-node NAME | restart-apiserver

Flags not given to ``up`` keep the values recorded in the lab directory (lab.json), else the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from minilab.lab import UpOptions, down, processes, restart_apiserver, restart_node, up
from minilab.profiles import BY_NAME, Level, ProfileError, render, resolve
from minilab.state import LabDir, LabState, Settings
from minilab.tunnelmode import MODES, status_lines, tunnels_up
from minilab.waits import LabError, node_table

DEFAULT_DIR = "_run/lab"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minilab", description="A local cluster: apiserver, controller-manager and "
                                "N kubelets as processes on loopback addresses, inspected with the real kubectl.")
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"the lab directory (default {DEFAULT_DIR})")
    sub = p.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="make the PKI, start everything, wait until all nodes are Ready")
    u.add_argument("--dir", default=argparse.SUPPRESS)
    u.add_argument("--nodes", type=int, default=None, help="nodes with pre-made kubelet.conf (default 2)")
    u.add_argument("--profile", choices=[lv.value for lv in Level], default=None,
                   help="insecure: the real Kubernetes defaults (default); hardened: every path secured")
    u.add_argument("--set", action="append", dest="overrides", metavar="PATH=LEVEL",
                   help=f"override one path of the profile; paths: {', '.join(BY_NAME)}")
    u.add_argument("--tunnel", choices=MODES, default=None,
                   help="how the apiserver reaches kubelets, pods and services: direct (the real default: it "
                        "dials them itself); ssh (the deprecated SSH tunnels: a real OpenSSH sshd per node, "
                        "apiserver --ssh-user/--ssh-keyfile; INSECURE by default: node host keys are not "
                        "verified unless --set ssh-host-key=hardened); konnectivity (a proxy server and one "
                        "agent per node over mutual TLS, apiserver --egress-selector-config-file)")
    u.add_argument("--port", type=int, default=None, help="the apiserver's --secure-port (default 6443)")
    u.add_argument("--address", default=None, help="the apiserver's --bind-address (default 127.0.0.1)")
    u.add_argument("--service-cidr", default=None,
                   help="the apiserver's --service-cluster-ip-range, loopback (default 127.96.0.0/16; the "
                        "kubernetes service VIP is its first address, in the serving certificate's SANs)")
    u.add_argument("--first-node-ip", default=None, help="node1's address, then +1 per node (default 127.0.0.2)")
    u.add_argument("--kubelet-port", type=int, default=10250, help="kubelet --port (default 10250)")
    u.add_argument("--read-only-port", type=int, default=10255, help="kubelet --read-only-port if open (10255)")
    u.add_argument("--join-with-bootstrap-token", action="append", default=[], metavar="NAME", dest="join",
                   help="add a node that has only the bootstrap kubeconfig (TLS bootstrapping)")
    u.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for all nodes Ready")
    u.add_argument("-q", "--quiet", action="store_true", help="do not print the next commands")
    for name, text in (("status", "processes and node readiness"), ("down", "stop everything, pods included"),
                       ("env", "print `export KUBECONFIG=...` (use: eval \"$(minilab env)\")"),
                       ("profiles", "the profile table: each path, insecure and hardened flags"),
                       ("restart-apiserver", "stop (if running) and start the apiserver; the store is kept")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--dir", default=argparse.SUPPRESS)
        if name == "status":
            sp.add_argument("-v", action="store_true", help="also print each command line")
    rn = sub.add_parser("restart-node", help="stop (if running) and start one node's kubelet")
    rn.add_argument("--dir", default=argparse.SUPPRESS)
    rn.add_argument("name")
    return p


def _settings(args: argparse.Namespace, old: LabState | None) -> tuple[Settings, int, str]:
    base = old.settings if old else Settings()
    s = Settings(port=args.port or base.port, address=args.address or base.address,
                 profile=args.profile or base.profile,
                 overrides=tuple(args.overrides) if args.overrides is not None else base.overrides,
                 cluster_cidr=base.cluster_cidr, service_cidr=args.service_cidr or base.service_cidr,
                 key_type=base.key_type, tunnel=args.tunnel or base.tunnel, ssh_port=base.ssh_port)
    premade = [n for n in old.nodes if not n.joined] if old else []
    nodes = args.nodes if args.nodes is not None else (len(premade) or 2)
    first = args.first_node_ip or (min((n.ip for n in old.nodes), key=_ip_key) if old and old.nodes else "127.0.0.2")
    return s, nodes, first


def _ip_key(ip: str) -> tuple[int, ...]:
    return tuple(int(x) for x in ip.split("."))


def cmd_up(lab: LabDir, args: argparse.Namespace) -> int:
    old = lab.load()
    settings, nodes, first = _settings(args, old)
    joined = tuple(dict.fromkeys([*(n.name for n in old.nodes if n.joined), *args.join] if old else args.join))
    t0 = time.monotonic()
    state = up(lab, UpOptions(nodes=nodes, join=joined, settings=settings, first_node_ip=first,
                              kubelet_port=args.kubelet_port, read_only_port=args.read_only_port,
                              timeout=args.timeout))
    print(f"minilab: {len(state.nodes)} node(s) Ready in {time.monotonic() - t0:.1f}s "
          f"(profile {settings.profile}{' --set ' + ','.join(settings.overrides) if settings.overrides else ''}; "
          f"tunnel {settings.tunnel}); apiserver {settings.url}, lab in {lab.root}")
    if not args.quiet:
        print(next_steps(lab, state))
    return 0


def next_steps(lab: LabDir, state: LabState) -> str:
    exe = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "minilab"
    me = "minilab" if exe == "minilab" else "python -m minilab"
    d = "" if str(lab.root) == str(Path(DEFAULT_DIR).resolve()) else f" --dir {shlex.quote(str(lab.root))}"
    n1 = state.nodes[0]
    lines = [
        "Try:",
        f'  eval "$({me}{d} env)"                         # KUBECONFIG (and PATH for kubectl)',
        "  kubectl get nodes -o wide",
        "  kubectl run hello --image=busybox --restart=Never -- sh -c 'echo hi; sleep 3600'",
        "  kubectl get pods -o wide                      # NODE and a pod IP from the node's podCIDR",
        "  kubectl get csr                               # the nodes' client certificates (bootstrap joins)",
        f"  curl -sk https://{n1.ip}:{n1.port}/pods        # the kubelet API: who may read it? (profile)",
        f"  {me}{d} status     {me}{d} profiles     {me}{d} down",
    ]
    return "\n".join(lines)


def cmd_status(lab: LabDir, args: argparse.Namespace) -> int:
    state = lab.load()
    rows = processes(lab)
    if state is None or not rows:
        print(f"no lab running in {lab.root}")
        return 0
    print(f"lab {lab.root}  profile {state.settings.profile}"
          + (f" --set {','.join(state.settings.overrides)}" if state.settings.overrides else "")
          + f"  tunnel {state.settings.tunnel}")
    levels = resolve(state.settings.profile, state.settings.overrides)
    for line in status_lines(state, levels):
        print(line)
    print(f"{'PROCESS':26} {'PID':>7}  {'ALIVE':5}  ADDRESS")
    for r in rows:
        print(f"{r.key:26} {r.info.pid:>7}  {'yes' if r.alive else 'NO':5}  {r.info.address}")
        if args.v:
            print("    " + shlex.join(r.info.argv))
    api = next((r for r in rows if r.key == "apiserver"), None)
    if api is None or not api.alive:
        print("apiserver is not running: no node status")
        return 1
    try:
        nodes = asyncio.run(node_table(lab))
    except Exception as e:  # noqa: BLE001 - the status command reports, it does not fail
        print(f"cannot read nodes: {type(e).__name__}: {e}")
        return 1
    print(f"\n{'NODE':12} {'READY':8} {'ADDRESS':24} PODCIDR")
    for name, ready, cidr in nodes:
        spec = state.node(name)
        where = f"{spec.ip}:{spec.port}" if spec else "-"
        print(f"{name:12} {ready:8} {where:24} {cidr}")
    late = tunnels_up(state)
    if late:
        print(f"\ntunnels not up: {', '.join(late)}")
    return 0 if all(r.alive for r in rows) and not late else 1


def cmd_env(lab: LabDir) -> int:
    print(f"export KUBECONFIG={shlex.quote(str(lab.admin_conf))}")
    here = Path(sys.executable).parent
    if (here / "kubectl").exists() and shutil.which("kubectl") != str(here / "kubectl"):
        print(f"export PATH={shlex.quote(str(here))}:\"$PATH\"")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    lab = LabDir(Path(args.dir).resolve())
    try:
        if args.cmd == "up":
            return cmd_up(lab, args)
        if args.cmd == "down":
            down(lab)
            return 0
        if args.cmd == "status":
            return cmd_status(lab, args)
        if args.cmd == "env":
            return cmd_env(lab)
        if args.cmd == "profiles":
            state = lab.load()
            print(render(resolve(state.settings.profile, state.settings.overrides) if state else None))
            return 0
        if args.cmd == "restart-node":
            restart_node(lab, args.name)
            return 0
        restart_apiserver(lab)
        return 0
    except (LabError, ProfileError) as e:
        print(f"minilab: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"minilab: interrupted; `minilab --dir {lab.root} down` stops what was started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
