"""``mini-controller-manager`` / ``python -m miniapi.controllermanager``: run the controllers with
kube-controller-manager-style flags. SIGTERM or SIGINT stops them cleanly (exit status 0)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from miniapi.controllermanager.config import Config, ConfigError, from_args
from miniapi.controllermanager.manager import run


async def _serve(cfg: Config) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await run(cfg, stop)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg, verbosity = from_args(argv)
    except ConfigError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.DEBUG if verbosity >= 4 else logging.INFO,
                        format="%(asctime)s %(levelname).1s %(name)s] %(message)s", stream=sys.stderr)
    logging.getLogger("miniapi.controllermanager").info("controllers enabled: %s", ", ".join(cfg.enabled))
    return asyncio.run(_serve(cfg))


if __name__ == "__main__":
    sys.exit(main())
