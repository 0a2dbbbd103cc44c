"""The streaming bytes captured from the real kubectl v1.37.1 and Python client 37 (fixtures/capture_streaming.py)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


@cache
def _data() -> dict[str, Any]:
    return dict(json.loads((FIXTURES / "kubectl_streaming.json").read_text()))


def capture(name: str) -> dict[str, Any]:
    for item in _data()["captures"]:
        if item["name"] == name:
            return dict(item)
    raise KeyError(name)


def result(name: str) -> dict[str, Any]:
    return dict(_data()["results"][name])


def messages(name: str, direction: str) -> list[bytes]:
    """Every WebSocket message payload of one capture in one direction (``c2s`` or ``s2c``), in order."""
    return [bytes.fromhex(m["hex"]) for m in capture(name)["messages"] if m["dir"] == direction and "hex" in m]
