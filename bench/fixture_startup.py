"""What a fixture apiserver costs per test: start (until it listens) and start + stop, against a bare
aiohttp TLS app started the same way in the same run.

    .venv/bin/python bench/fixture_startup.py [--runs 100] [--suite 200]

1. Kit: ``KitAPIServer(pki, loop, workdir).start()``, what the ``apiserver`` fixture does, with the
   kit's default (kubeadm-like) flags: flag parsing + validation, token file, store,
   authenticators, default RBAC policy bootstrap, RBAC and Node informers synced, TLS context
   (shared between fixture servers), listening on port 0. Then ``stop()``.
2. Bare: an ``aiohttp.web`` app with one handler, ``AppRunner`` + ``TCPSite`` on port 0 with the same
   TLS context builder (:func:`miniapi.tlsconfig.server_ssl_context`, client certs requested), on
   the same kit loop, driven the same way (one ``KitLoop.run`` per start and per stop).
3. Runs alternate kit/bare; each side's median and p90 are reported with the kit/bare ratio. The
   target is a kit start + stop median under 150 ms (PASS/FAIL).
4. ``--suite N`` also times ``pytest`` on a generated file of N tests, each starting its own
   apiserver (the ``apiserver`` fixture) and making one authenticated request, in a subprocess.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miniapi import tlsconfig  # noqa: E402
from miniapi.testing import KitAPIServer, KitLoop, make_cluster_pki  # noqa: E402
from miniapi.testing.clusterpki import ClusterPKI  # noqa: E402

TARGET_MS = 150.0


class BareApp:
    def __init__(self, pki: ClusterPKI, loop: KitLoop) -> None:
        self.pki, self.loop = pki, loop
        self.runner: web.AppRunner | None = None

    async def _start(self) -> None:
        async def hello(request: web.Request) -> web.Response:
            return web.json_response({"kind": "Status"})

        app = web.Application()
        app.router.add_get("/", hello)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        ctx = tlsconfig.server_ssl_context(str(self.pki.serving_cert_file), str(self.pki.serving_key_file),
                                           str(self.pki.ca_file))
        await web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ctx, backlog=512, reuse_address=True).start()

    async def _stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    def start(self) -> None:
        self.loop.run(self._start())

    def stop(self) -> None:
        self.loop.run(self._stop())


class KitSide:
    """What the ``apiserver`` fixture does per test: build the server (flags, token file), start, stop."""

    def __init__(self, pki: ClusterPKI, loop: KitLoop, workdir: Path) -> None:
        self.pki, self.loop, self.workdir = pki, loop, workdir
        self.server: KitAPIServer | None = None

    def start(self) -> None:
        self.server = KitAPIServer(self.pki, self.loop, self.workdir).start()

    def stop(self) -> None:
        assert self.server is not None
        self.server.stop()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure(runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("kit start", "kit start+stop", "bare start", "bare start+stop")}
    with tempfile.TemporaryDirectory(prefix="fixture-bench-") as tmp, KitLoop() as loop:
        pki = make_cluster_pki(Path(tmp) / "pki")
        for i in range(runs + 3):  # 3 warm-up rounds (imports, first TLS context, code caches)
            kit = KitSide(pki, loop, Path(tmp) / f"s{i}")
            bare = BareApp(pki, loop)
            sides: list[tuple[str, Callable[[], object], Callable[[], object]]] = [
                ("kit", kit.start, kit.stop), ("bare", bare.start, bare.stop)]
            for name, start, stop in sides if i % 2 else reversed(sides):
                t0 = time.perf_counter()
                started = timed(start)
                stop()
                total = (time.perf_counter() - t0) * 1000
                if i >= 3:
                    out[f"{name} start"].append(started)
                    out[f"{name} start+stop"].append(total)
    return out


SUITE = '''
import pytest
from miniapi.testing import assert_forbidden

@pytest.mark.parametrize("n", range({n}))
def test_alice(apiserver, n):
    resp = apiserver.as_user("alice", groups=["dev"]).sync.get("/api/v1/namespaces/default/secrets")
    assert_forbidden(resp, user="alice")
'''


def run_suite(n: int) -> float:
    with tempfile.TemporaryDirectory(prefix="fixture-suite-") as tmp:
        path = Path(tmp) / "test_suite.py"
        path.write_text(textwrap.dedent(SUITE.format(n=n)))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(path)],
                              cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"suite failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
        return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--suite", type=int, default=200, help="tests in the generated suite (0: skip)")
    args = parser.parse_args()
    logging.getLogger("miniapi").setLevel(logging.ERROR)  # the INSECURE warnings, once per start
    results = measure(args.runs)
    print(f"{'':18} {'median ms':>10} {'p90 ms':>8}   ({args.runs} runs each, interleaved)")
    for name, values in results.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:18} {statistics.median(values):10.2f} {p90:8.2f}")
    for what in ("start", "start+stop"):
        kit, bare = (statistics.median(results[f"{s} {what}"]) for s in ("kit", "bare"))
        print(f"ratio kit/bare {what:11} {kit / bare:6.1f}x")
    kit_total = statistics.median(results["kit start+stop"])
    verdict = "PASS" if kit_total < TARGET_MS else "FAIL"
    print(f"kit start+stop median {kit_total:.1f} ms vs target {TARGET_MS:.0f} ms: {verdict}")
    if args.suite:
        wall = run_suite(args.suite)
        print(f"pytest suite: {args.suite} tests, one apiserver each: {wall:.1f} s wall "
              f"({wall / args.suite * 1000:.0f} ms/test incl. pytest and interpreter start)")


if __name__ == "__main__":
    main()
