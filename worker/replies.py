"""A turn's reply: recorded once (idempotent per turn and part), then sent part by part
by whoever holds the conversation's lease."""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from db.conversations import LeaseLostError, renew_lease
from db.log_context import log_context
from db.models import OutboundMessage, OutboundStatus, Turn
from db.outbox import mark_send_failed, mark_sent, record_reply
from worker.channels.base import PermanentSendError, SentMessage, TransientSendError
from worker.channels.formatting import markdown_to_whatsapp
from worker.channels.splitting import split_text
from worker.delivery import send_with_retries
from worker.runtime import Runtime
from worker.scene import Scene
from worker.turn_errors import TransientTurnError, UndeliverableError

logger = logging.getLogger(__name__)

MARK_SENT_ATTEMPTS = 4
MARK_SENT_BACKOFF_SECONDS = 0.2


async def record_reply_parts(
    turn: Turn, scene: Scene, text: str, *, lease: uuid.UUID, runtime: Runtime
) -> list[OutboundMessage]:
    """Record `text` in WhatsApp formatting, split into the channel's message size."""
    outbound = runtime.channel(scene.channel)
    parts = split_text(markdown_to_whatsapp(text), outbound.max_message_length)
    async with runtime.autocommit_sessionmaker.begin() as db:
        await hold_lease(turn.session_id, lease, runtime=runtime, db=db)
        return await record_reply(
            session_id=turn.session_id,
            turn_id=turn.id,
            retry=turn.retries,
            channel_id=scene.channel.id,
            recipient=scene.messages[-1].sender,
            parts=parts,
            db=db,
        )


async def send_pending(
    replies: list[OutboundMessage], scene: Scene, *, lease: uuid.UUID, runtime: Runtime
) -> None:
    """Send every part not sent yet, in order; a refused part fails the turn for good.
    Each part is marked sent at once, in one statement: until then a crash resends it."""
    outbound = runtime.channel(scene.channel)
    for reply in replies:
        if reply.status != OutboundStatus.PENDING:
            continue
        async with runtime.sessionmaker.begin() as db:
            await hold_lease(reply.session_id, lease, runtime=runtime, db=db)
        try:
            sent = await send_with_retries(
                outbound, sender=scene.channel.address, recipient=reply.recipient, text=reply.text
            )
        except TransientSendError as error:
            raise TransientTurnError(
                f"send failed: {error}", retry_after=error.retry_after
            ) from error
        except PermanentSendError as error:
            async with runtime.sessionmaker.begin() as db:
                await mark_send_failed(reply.id, error=str(error), db=db)
            raise UndeliverableError(f"send failed: {error}") from error
        await mark_part_sent(reply, sent, runtime=runtime)


async def mark_part_sent(reply: OutboundMessage, sent: SentMessage, *, runtime: Runtime) -> None:
    """Store that the provider took `reply`, retrying on a fresh connection: a pooled
    connection that died (terminated backend, database restart) fails its next statement
    once, and a mark lost here would send the part to the user again on the retry.
    Its log line ties our outbound id to the provider's message id."""
    with log_context(outbound_id=reply.id, provider_message_id=sent.provider_message_id):
        logger.info("reply part %d sent (%s)", reply.part + 1, sent.status)
    for attempt in range(1, MARK_SENT_ATTEMPTS + 1):
        try:
            async with runtime.autocommit_sessionmaker.begin() as db:
                await mark_sent(
                    reply.id,
                    provider_message_id=sent.provider_message_id,
                    status=sent.status,
                    db=db,
                )
            return
        except (OperationalError, InterfaceError):
            if attempt == MARK_SENT_ATTEMPTS:
                raise
            await asyncio.sleep(MARK_SENT_BACKOFF_SECONDS * attempt)


async def hold_lease(
    session_id: uuid.UUID, lease: uuid.UUID, *, runtime: Runtime, db: AsyncSession
) -> None:
    """Make sure the conversation is still ours before acting on it: nothing to do while
    the lease is fresh, else extend it, or stop if it was taken over."""
    if runtime.leases.fresh(lease):
        return
    renewed = await renew_lease(
        session_id, lease, ttl_seconds=runtime.settings.conversation_lease_seconds, db=db
    )
    if not renewed:
        raise LeaseLostError(f"session {session_id} is leased to another worker")
    runtime.leases.held(lease)
