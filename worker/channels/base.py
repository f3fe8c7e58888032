"""What every outbound channel offers, and how its failures are classified."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SentMessage:
    provider_message_id: str
    status: str


class SendError(Exception):
    """The provider did not accept a message."""


class TransientSendError(SendError):
    """Worth retrying: rate limits, provider 5xx, timeouts, connection failures.

    `retry_after` is the provider's hint, in seconds, when it gave one.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """Retrying cannot help: a rejected recipient, bad credentials, invalid content."""


def retry_after_seconds(header: str | None) -> float | None:
    """A `Retry-After`-style header in seconds; None when absent or not a number of
    seconds (an HTTP date is treated as no hint)."""
    try:
        seconds = float(header) if header else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < float("inf") else None


class OutboundChannel(Protocol):
    provider: str
    max_message_length: int

    async def send(self, *, sender: str, recipient: str, text: str) -> SentMessage:
        """Send one message of at most `max_message_length` characters."""
        ...

    async def show_typing(self, *, sender: str, message_id: str) -> None:
        """Mark `message_id` read and show the typing indicator, where supported."""
        ...

    async def aclose(self) -> None: ...
