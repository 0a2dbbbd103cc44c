"""``miniapi`` / ``python -m miniapi``: run the apiserver with kube-apiserver-style flags."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import sys
from collections.abc import Sequence

from miniapi.config import ConfigError, from_args
from miniapi.server import APIServer


async def _serve(server: APIServer) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"miniapi: serving on {server.url}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg, verbosity = from_args(argv)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if verbosity >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s] %(message)s", stream=sys.stderr)
    # a standalone process keeps no audit Events in memory that nobody could read: with no
    # --audit-log-path it has no audit backend at all, and the real chain then has no audit filters
    cfg = dataclasses.replace(cfg, audit_memory_events=0)
    try:
        asyncio.run(_serve(APIServer(cfg)))
    except OSError as exc:
        print(f"Error: failed to listen on {cfg.bind_address}:{cfg.secure_port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
