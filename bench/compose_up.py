"""The docker lab's start: ``docker-compose up -d`` until every node is Ready, against the same containers
doing nothing, measured in the same run (issue 7: under 30 s once images are built).

    sudo .venv/bin/python bench/compose_up.py [--runs 3] [--profile insecure] [--tunnel direct]

Uses the lab's test harness (tests/lab/harness.py): its lock (one lab at a time on this machine), the offline
base image and wheelhouse, the image built once before timing (``--network none``), and its cleanup at the end
(containers, networks, volumes, images; dockerd if it started it). Per round, alternating, each followed by an
untimed ``down -v``:

1. ``lab``: ``docker-compose up -d --no-build`` of docker-compose.yml (attacker intercepting), until the pki
   and bootstrap-token jobs exited 0, every service runs (healthy where it has a health check) and
   ``kubectl get nodes`` in the client shows node1, node2 and node3 Ready: the harness's own readiness check.
2. baseline ``idle``: the same project, networks, volumes and containers (entrypoint, routes, host keys),
   every service's command replaced by ``lab role idle`` (the one-shot jobs by ``true``, health checks by
   "the idle role is up"), until every service runs and is healthy, polled the same way minus kubectl.

Prints the median, min and max of both and the ratio lab/idle; the difference is what the control plane,
the kubelets and TLS bootstrapping cost on top of docker starting the containers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab.harness import JOBS, PROJECT, SERVICES, TAG, Harness, HarnessError  # noqa: E402

TARGET_S = 30.0
IDLE_HEALTH = {"test": ["CMD", "test", "-e", "/run/lab/ready"], "interval": "1s", "timeout": "3s", "retries": 60}


def idle_override(path: Path) -> Path:
    """A compose override: every long-running service idles, the jobs just succeed (JSON is YAML)."""
    services: dict[str, dict[str, object]] = {name: {"command": ["lab", "role", "idle"]} for name in SERVICES}
    for name in ("apiserver", "attacker"):
        services[name]["healthcheck"] = IDLE_HEALTH
    for job in JOBS:
        services[job] = {"command": ["true"]}
    path.write_text(json.dumps({"services": services}, indent=1) + "\n")
    return path


def _idle_ready(h: Harness) -> str | None:
    containers = h._containers()
    for name in SERVICES:
        state = containers.get(name, {}).get("State", {})
        if state.get("Status") != "running":
            return f"{name} is {state.get('Status', 'missing')}"
        if (state.get("Health") or {}).get("Status") not in (None, "healthy"):
            return f"{name} is {(state.get('Health') or {}).get('Status')}"
    return None


def time_lab(h: Harness, timeout: float = 120) -> float:
    start = time.monotonic()
    h.compose("up", "-d", "--no-build", capture=True, timeout=timeout)
    h.wait_ready(timeout)
    return time.monotonic() - start


def time_idle(h: Harness, override: Path, timeout: float = 120) -> float:
    argv = ["docker-compose", "-p", PROJECT, "-f", str(ROOT / "docker-compose.yml"), "-f", str(override),
            "up", "-d", "--no-build"]
    start = time.monotonic()
    h.sh(argv, capture=True, timeout=timeout, env=h.lab_env)
    deadline = start + timeout
    while (problem := _idle_ready(h)) is not None:
        if time.monotonic() > deadline:
            raise HarnessError(f"the idle baseline did not come up: {problem}")
        time.sleep(0.5)
    return time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", default="insecure", choices=("insecure", "hardened"))
    p.add_argument("--tunnel", default="direct", choices=("direct", "ssh", "konnectivity"))
    args = p.parse_args()
    h = Harness()
    h.lock()
    lab: list[float] = []
    idle: list[float] = []
    try:
        h.prepare()
        h.lab_env = {"LAB_TAG": TAG, "LAB_BASE_IMAGE": h.base, "LAB_PROFILE": args.profile, "LAB_SET": "",
                     "LAB_ATTACK": "intercept", "LAB_TUNNEL": args.tunnel,
                     "LAB_ATTACK_PORTS": {"ssh": "22,10250,10255", "konnectivity": "8132,10250"}.get(args.tunnel,
                                                                                                    "10250")}
        with tempfile.TemporaryDirectory() as tmp:
            override = idle_override(Path(tmp) / "idle.json")
            h.down()
            for i in range(args.runs):
                idle.append(time_idle(h, override))
                h.down()
                lab.append(time_lab(h))
                h.down()
                print(f"round {i + 1}: lab {lab[-1]:.2f}s, idle {idle[-1]:.2f}s", file=sys.stderr, flush=True)
    finally:
        try:
            h.cleanup()
        finally:
            h.unlock()
    lab_m, idle_m = statistics.median(lab), statistics.median(idle)
    print(f"docker-compose up -d to all nodes Ready ({args.profile}, LAB_TUNNEL={args.tunnel}, "
          f"{args.runs} runs, images built)")
    print(f"{'':40} {'median':>8} {'min':>7} {'max':>7}  {'x idle':>7}")
    for name, values in (("lab: up -d, node1-3 Ready", lab), ("baseline: same containers, lab role idle", idle)):
        m = statistics.median(values)
        print(f"{name:40} {m:7.2f}s {min(values):6.2f}s {max(values):6.2f}s  {m / idle_m:7.2f}")
    verdict = "OK" if lab_m < TARGET_S else "TOO SLOW"
    print(f"\nlab up median {lab_m:.2f}s: {verdict} (target < {TARGET_S:.0f}s); "
          f"{lab_m / idle_m:.2f}x the idle containers")
    return 0 if lab_m < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
