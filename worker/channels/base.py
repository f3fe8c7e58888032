"""What every outbound channel offers, and how its failures are classified."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from db.offered_options import OfferedOptions
from db.templates import FilledTemplate


@dataclass(frozen=True)
class SentMessage:
    provider_message_id: str
    status: str


@dataclass(frozen=True)
class VoiceNote:
    """A spoken reply to send in place of its text: the stored file (`media` table) and
    its bytes, for a provider that takes an upload (Meta) or fetches a link to it (Twilio)."""

    media_id: uuid.UUID
    content: bytes
    content_type: str


class SendError(Exception):
    """The provider did not accept a message."""


class TransientSendError(SendError):
    """Worth retrying: rate limits, provider 5xx, timeouts, connection failures.

    `retry_after` is the provider's hint, in seconds, when it gave one.
    `may_have_been_sent`: the request left and no answer came back (a timeout, a dropped
    connection), so the provider may have taken the message; a refusal it answered
    (429, 5xx) or a connection never made did not send it.
    """

    def __init__(
        self, reason: str, *, retry_after: float | None = None, may_have_been_sent: bool = False
    ) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.may_have_been_sent = may_have_been_sent


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
    status_wait_seconds: float
    """How long a resumed turn waits for a delivery status to name a part that may have
    been sent: statuses that carry our outbound id back (Meta's) tell; 0 where none do."""
    sends_voice: bool
    """Whether it can send a `VoiceNote` (Twilio only with a link it can fetch it from)."""

    async def send(
        self,
        *,
        sender: str,
        recipient: str,
        text: str,
        outbound_id: uuid.UUID | None = None,
        options: OfferedOptions | None = None,
        voice: VoiceNote | None = None,
        template: FilledTemplate | None = None,
    ) -> SentMessage:
        """Send one message of at most `max_message_length` characters (with `options`,
        at most `options_text_length(options)`), or with `voice` the voice note that says
        `text`, or with `template` that approved template (`text` is its filled body: what
        the user reads); `outbound_id` is our id of it, for a provider that hands it back
        in its delivery statuses."""
        ...

    def options_text_length(self, options: OfferedOptions) -> int:
        """How long the text of a message offering `options` may be."""
        ...

    async def find_sent(
        self,
        *,
        sender: str,
        recipient: str,
        text: str,
        since: datetime,
        options: OfferedOptions | None = None,
        voice: bool = False,
    ) -> list[SentMessage]:
        """Messages with this text (and `options`; with `voice`, voice notes) the provider
        took from `sender` to `recipient` since `since`, oldest first; empty where the
        provider keeps no list to ask."""
        ...

    async def show_typing(self, *, sender: str, message_id: str) -> None:
        """Mark `message_id` read and show the typing indicator, where supported."""
        ...

    async def aclose(self) -> None: ...
