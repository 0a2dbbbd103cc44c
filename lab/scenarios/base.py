"""What every scenario shares: running the real tools while showing the command, numbered steps,
"notice" lines for the learner, and checks whose failures make ``lab scenario`` exit 1.

Output shape (one scenario run)::

    == kubelet-mitm: MITM of apiserver -> kubelet logs  [apiserver-kubelet-ca=insecure ...]
    [1] Create a pod on node1 that logs a secret
        $ kubectl apply -f -
        pod/mitm-demo-3f2a created
    [2] ...
        ok: kubectl logs printed the secret
        NOTICE: the apiserver never checked whose certificate it got
    == result: as expected (insecure)

Exit codes: 0 every check as expected, 1 some check not, 2 the lab is not set up for the scenario
(e.g. no attacker intercepting), with a hint what to start.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.attacker import loot
from lab.topology import Topology
from minilab.profiles import Level

Out = Callable[[str], None]


class NotSetUp(Exception):
    """The lab does not run what the scenario needs; the message says what to start."""


@dataclass
class Report:
    out: Out = field(default=lambda s: print(s, flush=True))
    failures: list[str] = field(default_factory=list)
    steps: int = 0

    def title(self, text: str) -> None:
        self.out(f"== {text}")

    def step(self, text: str) -> None:
        self.steps += 1
        self.out(f"\n[{self.steps}] {text}")

    def say(self, text: str, indent: str = "    ") -> None:
        self.out(textwrap.indent(text.rstrip("\n"), indent))

    def notice(self, text: str) -> None:
        self.out(textwrap.fill(text, 100, initial_indent="    NOTICE: ", subsequent_indent="            "))

    def check(self, ok: bool, expected: str, otherwise: str) -> bool:
        if ok:
            self.out(f"    ok: {expected}")
        else:
            self.out(f"    UNEXPECTED: {otherwise} (expected: {expected})")
            self.failures.append(otherwise)
        return ok


@dataclass
class Context:
    top: Topology
    levels: Mapping[str, Level]
    report: Report
    loot_file: Path = loot.DEFAULT

    def level(self, path: str) -> Level:
        return self.levels[path]

    def run(self, argv: Sequence[str], *, stdin: str | None = None, show: bool = True, timeout: float = 60,
            max_lines: int = 15, display: Sequence[str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a real tool, showing ``$ command`` (``display`` instead, to hide a secret) and up to
        ``max_lines`` lines of what it printed."""
        if show:
            self.report.say("$ " + shlex.join(display or argv) + (" <<EOF ... EOF" if stdin else ""))
        try:
            proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            proc = subprocess.CompletedProcess(list(argv), 124, str(e.stdout or ""), f"timed out after {timeout}s")
        if show:
            lines = [_clip(line) for line in (proc.stdout + proc.stderr).rstrip("\n").splitlines()]
            more = [f"... ({len(lines) - max_lines} more lines)"] if len(lines) > max_lines else []
            if lines:
                self.report.say("\n".join(lines[:max_lines] + more), "      ")
        return proc

    def kubectl(self, *args: str, stdin: str | None = None, show: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run(["kubectl", *args], stdin=stdin, show=show, timeout=timeout)

    @contextlib.contextmanager
    def pod(self, manifest: Mapping[str, Any], running: str = "", *, ready: bool = False) -> Iterator[bool]:
        """``kubectl apply`` the pod and wait until it is Running (``ready``: its Ready condition, for pods
        that serve), as a check whose success text is ``running``; yields False if it did not start. The pod
        is deleted when the block ends, whether it started or not."""
        name = manifest["metadata"]["name"]
        try:
            self.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
            state, wait = (("Ready", "--for=condition=Ready") if ready
                           else ("Running", "--for=jsonpath={.status.phase}=Running"))
            waited = self.kubectl("wait", wait, f"pod/{name}", "--timeout=60s")
            yield self.report.check(waited.returncode == 0, running or f"pod {name} is {state}",
                                    f"pod {name} did not start")
        finally:
            self.kubectl("delete", "pod", name, "--wait=false", show=False)

    def attacker_mode(self) -> str:
        started = [e for e in loot.read(self.loot_file) if e.get("kind") == "started"]
        return str(started[-1].get("mode")) if started else "absent"

    def need_attacker(self) -> None:
        mode = self.attacker_mode()
        if mode != "intercept":
            raise NotSetUp(f"this scenario needs the attacker intercepting, but it is {mode!r}; start the lab "
                           "with LAB_ATTACK=intercept (e.g. `docker compose --env-file lab/env/insecure.env up -d`)")


def _clip(line: str, width: int = 300) -> str:
    return line if len(line) <= width else f"{line[:width]}... ({len(line)} characters)"


def main_exit(report: Report, summary: str) -> int:
    if report.failures:
        report.out(f"\n== result: {len(report.failures)} check(s) did NOT turn out as expected ({summary})")
        return 1
    report.out(f"\n== result: as expected ({summary})")
    return 0


def fail_setup(report: Report, problem: NotSetUp) -> int:
    report.out(f"\n== cannot run: {problem}")
    print(f"lab scenario: {problem}", file=sys.stderr)
    return 2
