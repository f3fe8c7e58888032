"""One persistent asyncio loop per worker process, fed by Celery's task threads.

Every task thread hands its coroutine to this loop and waits, so one process carries as
many conversations as it has task threads while their model calls are in flight, and
the async engine, OpenAI client and HTTP pools created on the loop are reused by all of
them (never `asyncio.run()` per task, which breaks clients bound to a closed loop). It is
uvloop's, as the receiver's is under uvicorn: less CPU per turn than asyncio's own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


class WorkerLoop:
    """A loop running forever in a daemon thread of this process."""

    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self._background: list[concurrent.futures.Future[Any]] = []
        self._running: set[concurrent.futures.Future[Any]] = set()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="wabot-event-loop", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the loop and block this (task) thread until it is done;
        raises `concurrent.futures.CancelledError` if `cancel_running()` stopped it."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        self._running.add(future)
        try:
            return future.result()
        finally:
            self._running.discard(future)

    def cancel_running(self) -> None:
        """Cancel every coroutine a task thread is waiting on (their `finally` blocks run)."""
        for future in list(self._running):
            future.cancel()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` in the background on the loop until `stop()`."""
        self._background.append(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def stop(self, closing: Coroutine[Any, Any, None] | None = None) -> None:
        """Cancel background work, run an optional clean-up coroutine, then stop the loop."""
        for future in self._background:
            future.cancel()
        if closing is not None:
            self.run(closing)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


_lock = threading.Lock()
_loops: dict[int, WorkerLoop] = {}


def worker_loop() -> WorkerLoop:
    """This process's loop, created on first use (after any fork, so never inherited)."""
    pid = os.getpid()
    with _lock:
        if pid not in _loops:
            _loops[pid] = WorkerLoop()
        return _loops[pid]


def stop_worker_loop(closing: Coroutine[Any, Any, None] | None = None) -> None:
    with _lock:
        current = _loops.pop(os.getpid(), None)
    if current is not None:
        current.stop(closing)
    elif closing is not None:
        closing.close()
