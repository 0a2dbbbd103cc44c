"""The kit's event loop: one asyncio loop in a daemon thread that every fixture apiserver runs on.

Why a thread: the apiserver then serves whatever the test does on its own thread, so a synchronous
test, the real ``kubectl`` (a subprocess) and the official Python client (blocking urllib3) can all
talk to it, and an ``async def`` test may use any pytest-asyncio loop scope. Test code never runs
on this loop; :meth:`KitLoop.run` hands it a coroutine and waits for the result.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class KitLoop:
    """An event loop running forever in a daemon thread until :meth:`close`."""

    def __init__(self, name: str = "miniapi-testing") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the kit loop and return its result (or raise its exception)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("KitLoop.run() called from the kit loop itself; await the coroutine instead")
        if self.loop.is_closed():
            coro.close()
            raise RuntimeError("the kit loop is closed (the test session is over)")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def __enter__(self) -> KitLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: KitLoop | None = None
_shared_lock = threading.Lock()


def shared_loop() -> KitLoop:
    """The process-wide kit loop (made on first use) for code that runs outside the pytest plugin."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.loop.is_closed():
            _shared = KitLoop()
        return _shared
