"""The docker lab, for real: one harness per session (tests/lab/harness.py), one lab per profile.

Skipped only when not root (it installs Debian packages, starts dockerd, builds images); CI runs as
root, so there it always runs. Deselect by hand with ``-m "not lab"``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.lab.harness import Harness

_TIMINGS: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "lab: runs the docker compose lab for real (root only)")


@pytest.fixture(scope="session")
def harness() -> Iterator[Harness]:
    if os.geteuid() != 0:
        pytest.skip("the docker lab needs root: it installs docker.io/docker-compose/debootstrap, starts dockerd "
                    "and builds images (CI runs as root)")
    h = Harness()
    h.lock()
    try:
        h.prepare()
        yield h
    finally:
        try:
            h.cleanup()
        finally:
            h.unlock()
            _TIMINGS.update(h.timings)
            (h.cache / "timings.json").write_text(json.dumps(h.timings, indent=1) + "\n")


@pytest.fixture(scope="session", params=["insecure", "hardened"])
def lab(request: pytest.FixtureRequest, harness: Harness) -> Iterator[tuple[Harness, str]]:
    """The lab up in one profile, the attacker intercepting; down -v afterwards.

    ``PROFILE:PATH=LEVEL,...`` adds ``LAB_SET`` rows; a test asks for such a lab with
    ``@pytest.mark.parametrize("lab", ["insecure", "hardened", "hardened:ROWS"], indirect=True)``
    (same order as the params here, so pytest groups the tests per lab and only one lab is up)."""
    profile, _, overrides = str(request.param).partition(":")
    harness.up(profile, attack="intercept", overrides=overrides)
    try:
        yield harness, profile
    finally:
        harness.down()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _TIMINGS:
        terminalreporter.write_sep("-", "docker lab timings (s)")
        for name, seconds in _TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.1f}  {name}")
