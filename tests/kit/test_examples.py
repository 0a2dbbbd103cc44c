"""The workshop exercises in examples/: solutions pass, unsolved exercises fail with their hint, and an
exercise and its solution differ only in the learner's part."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# exercise -> a sentence its failure output must contain (the hint telling the learner what to do)
HINTS = {
    "exercise_rbac_least_privilege.py": "Replace the wildcard rule in ROLE",
    "exercise_node_isolation.py": "Run the apiserver with authorization_mode 'Node,RBAC'",
    "exercise_token_audience.py": "request the pod's vault token with audiences=['vault']",
    "exercise_bootstrap_flow.py": "Its Secret needs: type bootstrap.kubernetes.io/token",
}
YOUR_PART = re.compile(r"# --- your part -+\n.*?# --- end of your part -+\n", re.S)


def run_pytest(*files: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rf", *files],
                          cwd=EXAMPLES, capture_output=True, text=True, timeout=300, env=env)


def test_every_exercise_has_a_solution_and_a_hint() -> None:
    exercises = sorted(p.name for p in EXAMPLES.glob("exercise_*.py"))
    assert exercises == sorted(HINTS)
    assert sorted(p.name for p in EXAMPLES.glob("solution_*.py")) == [e.replace("exercise_", "solution_")
                                                                      for e in exercises]


def test_solutions_pass() -> None:
    proc = run_pytest(*sorted(p.name for p in EXAMPLES.glob("solution_*.py")))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert re.search(r"\d+ passed", proc.stdout) and "failed" not in proc.stdout


@pytest.mark.parametrize("exercise", sorted(HINTS))
def test_unsolved_exercise_fails_with_its_hint(exercise: str) -> None:
    proc = run_pytest(exercise)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert HINTS[exercise] in proc.stdout, proc.stdout[-4000:]
    assert "authorization.k8s.io/decision" in proc.stdout or "Failed:" in proc.stdout


@pytest.mark.parametrize("exercise", sorted(HINTS))
def test_exercise_and_solution_share_their_tests(exercise: str) -> None:
    def outside_your_part(name: str) -> str:
        text = (EXAMPLES / name).read_text()
        assert len(YOUR_PART.findall(text)) == 1, f"{name}: one '# --- your part' block expected"
        return YOUR_PART.sub("", text.split('"""', 2)[2])  # the module docstring differs too

    assert outside_your_part(exercise) == outside_your_part(exercise.replace("exercise_", "solution_"))
