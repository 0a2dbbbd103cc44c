"""``minikubelet`` / ``python -m minikubelet``: run a kubelet with the real kubelet's flags."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from minikubelet.bootstrap import BootstrapError
from minikubelet.config import ConfigError, KubeletConfig, from_args
from minikubelet.kubelet import Kubelet

log = logging.getLogger("minikubelet")


async def _serve(cfg: KubeletConfig) -> None:
    """Start, serve until SIGTERM/SIGINT, stop. A signal during start (e.g. while registration retries
    against an apiserver that is not there) stops it too, as it does the real kubelet."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    kubelet = Kubelet(cfg)
    starting = asyncio.create_task(kubelet.start())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([starting, stopping], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()  # a start error propagates (BootstrapError, OSError)
            api = kubelet.api
            where = f"{cfg.address}:{api.port if api else cfg.port}"
            print(f"minikubelet: node {kubelet.node_name} serving on {where}", flush=True)
            await stopping
    finally:
        for task in (starting, stopping):
            task.cancel()
        await asyncio.gather(starting, stopping, return_exceptions=True)
        await kubelet.stop()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg, verbosity = from_args(argv)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if verbosity >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s] %(message)s", stream=sys.stderr)
    for warning in cfg.warnings:
        log.warning(warning)
    try:
        asyncio.run(_serve(cfg))
    except BootstrapError as exc:
        print(f"Error: failed to run Kubelet: unable to load bootstrap kubeconfig or certificate: {exc}",
              file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"Error: failed to run Kubelet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
