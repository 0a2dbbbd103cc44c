"""Shared fixtures: the request bodies captured from the real kubectl v1.37.1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def captured(name: str) -> list[dict[str, Any]]:
    """The requests with a body that ``kubectl <capture name>`` sent (see fixtures/capture_kubectl.py)."""
    data = json.loads((FIXTURES / "kubectl_bodies.json").read_text())
    for capture in data["captures"]:
        if capture["name"] == name:
            return list(capture["requests"])
    raise KeyError(name)
