"""Cold start of the one-command lab: ``minilab up`` in a fresh directory until every node is Ready,
against baselines measured in the same run.

    .venv/bin/python bench/cold_start.py [--runs 5] [--nodes 2] [--profile insecure]

Each run uses a fresh temporary lab directory, a free apiserver port and its own loopback block
(127.0.9.x), so a lab the user runs is not disturbed. Timed, as wall clock of the CLI process:

1. ``up (PKI included)``: ``minilab up`` in an empty directory: CA and every key and certificate
   (EC P-256), then apiserver + controller-manager + N kubelets, until all nodes are Ready with a
   podCIDR. ``minilab down`` follows, untimed.
2. ``up (PKI excluded)``: the same, with the PKI made beforehand (``init_pki``, untimed) and
   everything else fresh (no store, no kubelet state).
3. Baseline ``N+2 x python -c pass``: starting as many bare interpreters at once and waiting for all.
4. Baseline ``apiserver alone``: ``python -m miniapi`` with the lab's flags until ``/readyz`` answers.

Medians are printed with ratios against both baselines; the target is a median under 3 s for 1.
"""

from __future__ import annotations

import argparse
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minilab import commands, procs  # noqa: E402
from minilab.profiles import resolve  # noqa: E402
from minilab.state import LabDir, Settings  # noqa: E402
from pki.init import init_pki  # noqa: E402

TARGET_S = 3.0
NODE_IPS = "127.0.9.2"


def minilab(lab: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "minilab", "--dir", str(lab), *args], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)


def timed_up(nodes: int, profile: str, premade_pki: bool) -> float:
    with tempfile.TemporaryDirectory(prefix="minilab-bench-") as tmp:
        lab, port = Path(tmp) / "lab", procs.free_port("127.0.0.1")
        if premade_pki:
            init_pki(lab, apiserver_url=f"https://127.0.0.1:{port}", nodes=[f"node{i}" for i in range(1, nodes + 1)],
                     node_ips={f"node{i}": f"127.0.9.{i + 1}" for i in range(1, nodes + 1)}, key_type="ec")
        t0 = time.perf_counter()
        try:
            minilab(lab, "up", "-q", "--nodes", str(nodes), "--profile", profile, "--port", str(port),
                    "--first-node-ip", NODE_IPS)
            return time.perf_counter() - t0
        finally:
            minilab(lab, "down")


def bare_interpreters(count: int) -> float:
    t0 = time.perf_counter()
    children = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(count)]
    for c in children:
        c.wait()
    return time.perf_counter() - t0


def apiserver_alone() -> float:
    with tempfile.TemporaryDirectory(prefix="minilab-bench-") as tmp:
        lab, port = LabDir(Path(tmp) / "lab"), procs.free_port("127.0.0.1")
        settings = Settings(port=port)
        init_pki(lab.root, apiserver_url=settings.url, nodes=(), key_type="ec")
        ctx = ssl.create_default_context(cafile=str(lab.ca_crt))
        t0 = time.perf_counter()
        info = procs.spawn(commands.apiserver(lab, settings, resolve("insecure")), lab.log("apiserver"),
                           settings.url, lab.root)
        try:
            while True:
                try:
                    with urllib.request.urlopen(f"{settings.url}/readyz", context=ctx, timeout=2):
                        return time.perf_counter() - t0
                except OSError:
                    time.sleep(0.01)
        finally:
            procs.stop([info])


def median_of(runs: int, fn: Callable[[], float]) -> list[float]:
    return sorted(fn() for _ in range(runs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--profile", default="insecure", choices=["insecure", "hardened"])
    args = ap.parse_args()
    rows: dict[str, list[float]] = {}
    for _ in range(args.runs):  # interleaved, so drift hits every row alike
        for name, fn in ((f"up, PKI included ({args.nodes} nodes, {args.profile})",
                          lambda: timed_up(args.nodes, args.profile, premade_pki=False)),
                         (f"up, PKI excluded ({args.nodes} nodes, {args.profile})",
                          lambda: timed_up(args.nodes, args.profile, premade_pki=True)),
                         (f"baseline: {args.nodes + 2} x python -c pass", lambda: bare_interpreters(args.nodes + 2)),
                         ("baseline: apiserver alone to /readyz", apiserver_alone)):
            rows.setdefault(name, []).append(fn())
    med = {name: statistics.median(v) for name, v in rows.items()}
    bare, alone = list(med.values())[2], list(med.values())[3]
    print(f"{'':48} {'median':>8} {'min':>7} {'max':>7}  {'x bare':>7} {'x apiserver':>11}")
    for name, values in rows.items():
        m = med[name]
        print(f"{name:48} {m:7.2f}s {min(values):6.2f}s {max(values):6.2f}s  {m / bare:7.1f} {m / alone:11.2f}")
    cold = list(med.values())[0]
    verdict = "PASS" if cold < TARGET_S else "FAIL"
    print(f"\ncold start (PKI included) median {cold:.2f}s over {args.runs} runs: {verdict} (target < {TARGET_S:.0f}s)")
    return 0 if cold < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
