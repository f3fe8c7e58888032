"""Serve an ASGI app with a real uvicorn on loopback, in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.requests import Request


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(app: Any, *, port: int | None = None) -> Iterator[str]:
    """Yield the base URL while uvicorn serves `app` on 127.0.0.1."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"uvicorn did not start on port {port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class HeldAnswers:
    """Answers a fake provider holds after taking a message, as a slow or stalled API
    does: a worker can die, or its request time out, in between."""

    def __init__(self) -> None:
        self.holding = 0
        """Answers held right now."""
        self.unheard: list[dict[str, Any]] = []
        """Messages taken whose sender was gone before the answer came."""

    async def hold(
        self, request: Request, taken: dict[str, Any], seconds: Callable[[], float]
    ) -> None:
        """Hold the answer to `request` for `seconds()`, read again as it waits (so a test
        can release it early), and note `taken` if nobody is left to hear it."""
        started = time.monotonic()
        self.holding += 1
        try:
            # Polled, not an Event: the test releases it from its own thread.
            while time.monotonic() - started < seconds():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        finally:
            self.holding -= 1
        if await request.is_disconnected():
            self.unheard.append(taken)
