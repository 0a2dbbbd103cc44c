"""client-go's rate-limited work queue, reduced to what the controllers use, and the worker loop.

Rules (k8s.io/client-go/util/workqueue):

1. A key waiting in the queue is queued once, however often it is added (events coalesce).
2. A key being processed is never handed to a second worker; added meanwhile, it is queued again
   when the first worker calls :meth:`WorkQueue.done`.
3. :meth:`WorkQueue.add_rate_limited` re-adds after ``base * 2**failures`` seconds, capped at
   ``max_delay``; :meth:`WorkQueue.forget` (after a successful sync) resets the count.
4. :func:`process` is the worker: ``get`` -> ``sync(key)`` -> ``forget`` or ``add_rate_limited`` ->
   ``done``. :class:`Requeue` is an expected "try again later" (logged at debug); any other exception is
   logged as a warning with the key, never with object contents.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from miniapi.client import ClientError

log = logging.getLogger("miniapi.controllermanager")


class Requeue(Exception):
    """Not an error: the key should be retried with back-off (e.g. a CSR no SubjectAccessReview allowed)."""


class WorkQueue:
    def __init__(self, name: str, base_delay: float = 0.05, max_delay: float = 60.0) -> None:
        self.name = name
        self._base, self._max = base_delay, max_delay
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._ready.set()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        self.add_after(key, min(self._base * 2 ** failures, self._max))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def get(self) -> str:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._ready.set()

    def shutdown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()


async def process(queue: WorkQueue, sync: Callable[[str], Awaitable[None]]) -> None:
    """One worker (rule 4); runs until cancelled."""
    try:
        while True:
            key = await queue.get()
            try:
                await sync(key)
            except asyncio.CancelledError:
                raise
            except Requeue as exc:
                log.debug("%s: %s: %s; retrying", queue.name, key, exc)
                queue.add_rate_limited(key)
            except ClientError as exc:
                level = logging.INFO if exc.code == 409 else logging.WARNING
                log.log(level, "%s: sync %s: %s %s: %s; retrying", queue.name, key, exc.code, exc.reason,
                        exc.message)
                queue.add_rate_limited(key)
            except Exception as exc:  # a bug or a network error: keep the controller alive
                log.warning("%s: sync %s failed: %s: %s; retrying", queue.name, key, type(exc).__name__, exc)
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)
    finally:
        queue.shutdown()
