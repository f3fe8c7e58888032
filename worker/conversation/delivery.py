"""Talking to the user through a channel: sends that ride out short rate limits, and a
typing indicator kept up while the agent thinks."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from db.core.logging_setup import mask_numbers
from db.offered_options import OfferedOptions
from db.templates import FilledTemplate
from worker.channels.base import (
    OutboundChannel,
    SendError,
    SentMessage,
    TransientSendError,
    VoiceNote,
)
from worker.process.turn_metrics import counted_send

logger = logging.getLogger(__name__)

SEND_ATTEMPTS = 3
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 10.0


@counted_send
async def send_with_retries(
    channel: OutboundChannel,
    *,
    sender: str,
    recipient: str,
    text: str,
    outbound_id: uuid.UUID | None = None,
    options: OfferedOptions | None = None,
    voice: VoiceNote | None = None,
    template: FilledTemplate | None = None,
) -> SentMessage:
    """Send, retrying transient failures a few times with jittered exponential backoff,
    never sooner than the provider's own retry hint; then the failure is the turn's. A
    send that may have gone out is not retried here: sending again could deliver it
    twice, so the turn's retry asks the provider first."""
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            return await channel.send(
                sender=sender,
                recipient=recipient,
                text=text,
                outbound_id=outbound_id,
                options=options,
                voice=voice,
                template=template,
            )
        except TransientSendError as error:
            if attempt == SEND_ATTEMPTS or error.may_have_been_sent:
                raise
            delay = error.retry_after or FIRST_RETRY_SECONDS * 2 ** (attempt - 1)
            delay = min(MAX_RETRY_SECONDS, delay) * random.uniform(1.0, 1.25)
            logger.info(
                "%s send failed (attempt %d), retrying in %.1fs: %s",
                channel.provider,
                attempt,
                delay,
                mask_numbers(str(error)),
            )
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


@asynccontextmanager
async def typing_shown(
    channel: OutboundChannel, *, sender: str, message_id: str, refresh_seconds: float
) -> AsyncIterator[None]:
    """Show "typing…" now and refresh it until the block ends (WhatsApp drops it after
    25 s). A failing indicator is logged, never allowed to fail the turn."""

    async def keep_showing() -> None:
        while True:
            try:
                await channel.show_typing(sender=sender, message_id=message_id)
            except SendError as error:
                logger.info("typing indicator failed: %s", mask_numbers(str(error)))
            await asyncio.sleep(refresh_seconds)

    task = asyncio.create_task(keep_showing())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
