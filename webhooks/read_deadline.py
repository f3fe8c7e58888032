"""How long and how much a client may take to send a request: uvicorn's HTTP protocol
with a read deadline and a cap on header bytes.

uvicorn (0.54) times out only keep-alive connections that stay silent: a client that
sends a header or body byte every few seconds holds its connection (and, once the headers
are in, a request task) forever, and httptools buffers headers of any size. This protocol
closes a connection whose request has not arrived whole, headers and body, within
`REQUEST_READ_TIMEOUT_SECONDS` of its first byte (of the connection opening, for a first
request), and answers 431 to headers over `MAX_HEADER_BYTES`. Responses are not timed:
a streaming chat reply may take its run's time.

uvicorn uses it when told: `--http webhooks.read_deadline:ReadDeadlineProtocol` or
`UVICORN_HTTP=webhooks.read_deadline:ReadDeadlineProtocol`; `wabot serve`, the Procfile
and the Docker image do.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from db.core.settings import get_settings

logger = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
)


class ReadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (the one `uvicorn[standard]` runs) with a deadline on
    reading each request and a cap on its headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = get_settings().request_read_timeout_seconds
        self.read_deadline: asyncio.TimerHandle | None = None
        self.header_bytes: int | None = None
        """Bytes of the request whose headers are being read; None between requests."""

    # uvicorn's own signature (asyncio.Transport where asyncio's protocol says BaseTransport),
    # which uvicorn ignores the same way.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.header_bytes is None:
            return
        # The headers are still incomplete after this chunk, so all of it was header.
        self.header_bytes += len(data)
        if self.header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            reason = f"request headers exceed {MAX_HEADER_BYTES} bytes".encode()
            self.transport.write(_TOO_LARGE % (len(reason), reason))
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_bytes = 0
        self._start_deadline()

    def on_headers_complete(self) -> None:
        self.header_bytes = None
        queued = self.cycle is not None and not self.cycle.response_complete
        super().on_headers_complete()
        if queued:
            # A pipelined request: uvicorn stops reading until the one before it is
            # answered, which may take that request's run time.
            self._stop_deadline()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._stop_deadline()

    def _start_deadline(self) -> None:
        if self.read_deadline is None:
            self.read_deadline = self.loop.call_later(self.read_timeout, self._too_slow)

    def _stop_deadline(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def _too_slow(self) -> None:
        self.read_deadline = None
        if not self.transport.is_closing():
            logger.debug("closed a connection that sent no whole request in %gs", self.read_timeout)
            self.transport.close()
