"""The attacker's notebook: one JSON object per line in ``/loot/loot.jsonl`` (a volume the client
container mounts read-only, so scenarios can check what was stolen), for example::

    {"ts": 1764331200.5, "kind": "started", "mode": "intercept"}
    {"ts": 1764331201.2, "kind": "tls-handshake", "client": "10.221.1.10", "server": "10.221.2.11:10250"}
    {"ts": 1764331201.3, "kind": "request", "client": "10.221.1.10", "server": "10.221.2.11:10250",
     "method": "GET", "path": "/containerLogs/default/web/app"}
    {"ts": 1764331201.3, "kind": "log-lines", "server": "10.221.2.11:10250",
     "what": "default/web container app", "lines": ["db-password=hunter2"]}
    {"ts": 1764331300.0, "kind": "tls-refused", "client": "10.221.1.10", "server": "10.221.2.11:10250",
     "error": "... certificate unknown ..."}
    {"ts": 1764331300.0, "kind": "tls-dropped", "client": "10.221.1.10", "server": "10.221.2.11:10250"}

Other kinds: ``bearer-token`` (with the token: replaying it is the point), ``pods``, ``run-output``,
``exec-frame``. The file lives in a volume the attacker alone writes; ``docker compose down -v``
deletes it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT = Path(os.environ.get("LAB_LOOT", "/loot/loot.jsonl"))
Event = dict[str, Any]


def record(file: Path, kind: str, /, **fields: Any) -> Event:
    event = {"ts": round(time.time(), 3), "kind": kind, **fields}
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")
    return event


def read(path: Path = DEFAULT, since: float = 0.0) -> list[Event]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    events = []
    for line in text.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if isinstance(event, dict) and float(event.get("ts", 0)) >= since:
            events.append(event)
    return events


def wait_for(pred: Callable[[list[Event]], bool], path: Path = DEFAULT, since: float = 0.0,
             timeout: float = 5.0) -> list[Event]:
    """The events since ``since`` once ``pred`` holds for them, or after ``timeout`` (the addon
    writes a moment after the response went through)."""
    deadline = time.monotonic() + timeout
    while True:
        events = read(path, since)
        if pred(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.1)
