"""Polling helpers for tests that wait on other processes."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` after `within` s."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.05)


def wait_for_log(
    log: Path, marker: str, *, process: subprocess.Popen[bytes], timeout: float = 30.0
) -> None:
    """Block until `marker` appears in `log`; fail with the log if the process exits."""
    deadline = time.monotonic() + timeout
    while marker not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"worker not ready:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


async def at_least(collection: list[T], count: int, *, within: float = 20.0, what: str) -> list[T]:
    """Wait until `collection` (a fake server's record, filled from its own thread) holds
    `count` entries; returns a copy."""

    async def enough() -> list[T] | None:
        return list(collection) if len(collection) >= count else None

    return await eventually(enough, within=within, what=f"{count} {what}")


def wait_until_ready(
    ready: Callable[[], bool],
    *,
    process: subprocess.Popen[bytes],
    log: Path,
    what: str,
    timeout: float = 30.0,
) -> None:
    """Block until `ready()` (a server the test started answers); fail with the tail of
    its log if the process exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{what} did not start:\n{tail}")
        time.sleep(0.1)
