"""``minikubeproxy`` / ``python -m minikubeproxy``: kube-proxy with the real flag names.

    minikubeproxy --kubeconfig _run/lab/kube-proxy.conf [--proxy-mode iptables|userspace] [--cleanup]

``--proxy-mode`` unset: iptables where it works (root with the iptables binary), else userspace,
with a warning. One kube-proxy per network namespace: the local cluster's nodes all share the host's,
so ``minilab`` runs one for the host (``--hostname-override`` names the node it stands for); the
docker lab runs one per node container. ``--iptables-chain-prefix`` (not a real flag; default
``KUBE``) keeps two clusters on one host (a lab and a test run) apart.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from minikubeproxy.iptables import IptablesBackend
from minikubeproxy.proxier import Backend, Proxier
from minikubeproxy.userspace import UserspaceBackend

log = logging.getLogger("minikubeproxy")
MODES = ("iptables", "userspace")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="minikubeproxy", description="A small kube-proxy: makes every Service "
                                "ClusterIP:port on this host reach the service's ready endpoints.")
    a = p.add_argument
    a("--kubeconfig", default="", help="Path to a kubeconfig with the kube-proxy's credentials "
      "(user system:kube-proxy, bound to ClusterRole system:node-proxier).")
    a("--hostname-override", default="", help="The node this proxy runs for (logged; the rules are the same "
      "on every node).")
    a("--proxy-mode", default="", choices=("", *MODES),
      help="iptables (nat DNAT rules, the real default) or userspace (listen on each ClusterIP:port and copy "
           "bytes; removed from Kubernetes in 1.26, kept here as the fallback). Unset: iptables if usable.")
    a("--iptables-sync-period", type=float, default=30.0, help="Maximum interval (s) between full syncs.")
    a("--iptables-min-sync-period", type=float, default=1.0, help="Minimum interval (s) between syncs.")
    a("--iptables-chain-prefix", default="KUBE", help="Prefix of our nat chains, 1-4 characters (lab-only flag).")
    a("--cleanup", action="store_true", help="Remove the iptables rules of the prefix and exit.")
    a("-v", "--v", type=int, default=1, help="Log verbosity.")
    return p


async def choose(mode: str, prefix: str) -> Backend:
    ipt = IptablesBackend(prefix)
    if mode in ("", "iptables"):
        why = await ipt.available()
        if why is None:
            return ipt
        if mode == "iptables":
            raise SystemExit(f"Error: --proxy-mode=iptables: {why}")
        log.warning("iptables unavailable (%s); using the userspace mode", why)
    return UserspaceBackend()


async def serve(ns: argparse.Namespace) -> None:
    from miniapi.client import KubeClient

    backend = await choose(ns.proxy_mode, ns.iptables_chain_prefix)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with KubeClient.from_kubeconfig(ns.kubeconfig) as client:
        proxier = Proxier(client, backend, min_sync_period=ns.iptables_min_sync_period,
                          sync_period=ns.iptables_sync_period)
        running = asyncio.create_task(proxier.run())
        log.info("kube-proxy started node=%s mode=%s", ns.hostname_override or "-", backend.name)
        print(f"minikubeproxy: mode {backend.name}", flush=True)
        try:
            await asyncio.wait([running, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                running.result()
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
            await backend.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if ns.v >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s] %(message)s", stream=sys.stderr)
    if ns.cleanup:
        asyncio.run(IptablesBackend(ns.iptables_chain_prefix).cleanup())
        return 0
    if not ns.kubeconfig:
        print("Error: --kubeconfig is required (in-cluster configuration is not supported)", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(ns))
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
