"""The development channel: replies go to the worker's standard output."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime

from db.core.logging_setup import mask_numbers
from db.offered_options import OfferedOptions, numbered, numbered_length
from db.templates import FilledTemplate
from worker.channels.base import SentMessage, VoiceNote


class ConsoleChannel:
    """Used when a provider's credentials are not configured (the embedded demo)."""

    provider = "console"
    max_message_length = 4096
    status_wait_seconds = 0.0
    sends_voice = True

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
        shown = numbered(text, options) if options is not None else text
        if voice is not None:
            shown = f"(voice note, {len(voice.content)} bytes) {shown}"
        if template is not None:
            shown = f"(template {template.name}) {shown}"
        sys.stdout.write(f"[console reply to {mask_numbers(recipient)}] {shown}\n")
        sys.stdout.flush()
        return SentMessage(provider_message_id=f"console-{uuid.uuid4().hex}", status="sent")

    def options_text_length(self, options: OfferedOptions) -> int:
        return self.max_message_length - numbered_length(options)

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
        """Standard output keeps no record: a reply the worker died printing prints again."""
        return []

    async def show_typing(self, *, sender: str, message_id: str) -> None:
        return None

    async def aclose(self) -> None:
        return None
