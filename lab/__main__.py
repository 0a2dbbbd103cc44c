"""``lab``: the command inside the lab's containers.

    lab scenario --list
    lab scenario kubelet-mitm [--mode insecure|hardened]   # run from the client container:
        docker compose run --rm client lab scenario kubelet-mitm
    lab role apiserver|controller-manager|kubelet|pki|bootstrap-token|router|attacker|idle   # services' command

``--mode`` names the profile the scenario expects the lab to run; it must agree with the lab's
``LAB_PROFILE`` (both come from the same env file), so a scenario never judges a lab it was not
written for. Without ``--mode`` the lab's own settings (LAB_PROFILE + LAB_SET) decide.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lab", description="the workshop lab's scenarios and container roles")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scenario", help="run one scenario: steps, what to notice, exit 1 if not as expected")
    p.add_argument("name", nargs="?")
    p.add_argument("--mode", choices=("insecure", "hardened"),
                   help="the profile the lab runs (default: the lab's LAB_PROFILE)")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p = sub.add_parser("role", help="(compose services) start this container's component")
    p.add_argument("name")
    args = parser.parse_args(argv)
    if args.command == "role":
        from lab.roles import main as role_main

        return role_main(args.name)
    return scenario(args.name, args.mode, args.list)


def scenario(name: str | None, mode: str | None, list_only: bool) -> int:
    from lab import topology
    from lab.roles import levels_from_env
    from lab.scenarios import SCENARIOS
    from lab.scenarios.base import Context, NotSetUp, Report, fail_setup, main_exit

    if list_only or not name:
        for module in SCENARIOS.values():
            print(f"{module.NAME:16} {module.SUMMARY}")
        return 0 if list_only else 2
    if name not in SCENARIOS:
        print(f"lab scenario: unknown scenario {name!r}; `lab scenario --list` shows them", file=sys.stderr)
        return 2
    running = os.environ.get("LAB_PROFILE", "insecure")
    if mode is not None and mode != running:
        print(f"lab scenario: --mode {mode}, but this lab runs LAB_PROFILE={running}; restart it with "
              f"`docker compose --env-file lab/env/{mode}.env up -d` (or drop --mode)", file=sys.stderr)
        return 2
    module = SCENARIOS[name]
    levels = levels_from_env()
    report = Report()
    report.title(f"{module.NAME}: {module.SUMMARY}")
    report.say(" ".join(f"{p}={levels[p].value}" for p in module.PATHS), "   ")
    try:
        module.run(Context(topology.from_env(), levels, report))
    except NotSetUp as e:
        return fail_setup(report, e)
    overall = sorted({levels[p].value for p in module.PATHS}) or [running]  # no row decides it: the profile
    return main_exit(report, "/".join(overall))


if __name__ == "__main__":
    sys.exit(main())
