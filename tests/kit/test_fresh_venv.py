"""The new-user flow, for real: a fresh venv, ``pip install`` of this package, a 10-line test file that
uses only the fixtures, run by that venv's pytest.

How it stays fast and offline-safe enough for CI (~30-60 s, most of it pip):

1. The package is built as a wheel from a copy of the sources (``pip wheel --no-deps``; the
   isolated build fetches the setuptools that pyproject.toml asks for, from pip's cache after once).
2. ``python -m venv`` without ``--system-site-packages``: the new venv sees neither the dev venv nor
   the editable install, only what pip puts in it.
3. ``pip install --find-links WHEELHOUSE mini-control-plane pytest pytest-asyncio -c CONSTRAINTS``:
   the wheel from step 1; dependencies from the configured indexes (pip's cache makes repeats quick),
   pinned by the constraints to the versions of the dev venv, so the fresh venv tests the same stack.
4. The test asserts the plugin came from the fresh venv's site-packages.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def first_python_block(path: Path) -> str:
    """The docs' "A first test": the file a new user writes (the same in English and German)."""
    match = re.search(r"```python\n(.*?)```", path.read_text(), re.S)
    assert match, f"no python block in {path}"
    return match.group(1)


USER_TEST = first_python_block(DOCS / "testing-kit.md")


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")
           and not k.startswith("PYTEST_")}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, \
        f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def build_wheel(tmp: Path) -> Path:
    src, wheelhouse = tmp / "src", tmp / "wheelhouse"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("miniapi", "minikubelet", "pki"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
         str(wheelhouse), str(src)], tmp)
    return wheelhouse


def test_new_user_installs_the_package_and_runs_a_ten_line_test(tmp_path: Path) -> None:
    assert len(USER_TEST.splitlines()) <= 10
    assert first_python_block(DOCS / "testing-kit.de.md").replace("mit asyncio_mode = auto nicht nötig",
                                                                  "not needed with asyncio_mode = auto") == USER_TEST
    wheelhouse = build_wheel(tmp_path)
    constraints = tmp_path / "constraints.txt"
    freeze = run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], tmp_path).stdout
    constraints.write_text("\n".join(line for line in freeze.splitlines() if "==" in line) + "\n")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", "--find-links", str(wheelhouse), "-c", str(constraints),
         "mini-control-plane", "pytest", "pytest-asyncio"], tmp_path, timeout=600)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_my_cluster.py").write_text(USER_TEST)
    where = run([python, "-c", "import miniapi.testing.plugin as p; print(p.__file__)"], project).stdout
    assert str(venv) in where, f"the plugin was imported from {where!r}, not the fresh venv"
    proc = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project)
    assert "2 passed" in proc.stdout, proc.stdout

