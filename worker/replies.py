"""A turn's reply: recorded once (idempotent per turn and part), then sent part by part
by whoever holds the conversation's lease."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.conversations import LeaseLostError, renew_lease
from db.models import OutboundMessage, OutboundStatus, Turn
from db.outbox import mark_send_failed, mark_sent, record_reply
from worker.channels.base import PermanentSendError, SentMessage, TransientSendError
from worker.channels.formatting import markdown_to_whatsapp
from worker.channels.splitting import split_text
from worker.delivery import send_with_retries
from worker.runtime import Runtime
from worker.scene import Scene
from worker.turn_errors import TransientTurnError, UndeliverableError


async def record_reply_parts(
    turn: Turn, scene: Scene, text: str, *, lease: uuid.UUID, runtime: Runtime
) -> list[OutboundMessage]:
    """Record `text` in WhatsApp formatting, split into the channel's message size."""
    outbound = runtime.channel(scene.channel.provider)
    parts = split_text(markdown_to_whatsapp(text), outbound.max_message_length)
    async with runtime.autocommit_sessionmaker.begin() as db:
        await hold_lease(turn.session_id, lease, runtime=runtime, db=db)
        return await record_reply(
            session_id=turn.session_id,
            turn_id=turn.id,
            channel_id=scene.channel.id,
            recipient=scene.messages[-1].sender,
            parts=parts,
            db=db,
        )


@dataclass(frozen=True)
class SentPart:
    """A part the provider accepted, whose mark is not stored yet."""

    outbound_id: uuid.UUID
    sent: SentMessage

    async def mark(self, db: AsyncSession) -> None:
        await mark_sent(
            self.outbound_id,
            provider_message_id=self.sent.provider_message_id,
            status=self.sent.status,
            db=db,
        )


async def send_pending(
    replies: list[OutboundMessage], scene: Scene, *, lease: uuid.UUID, runtime: Runtime
) -> SentPart | None:
    """Send every part not sent yet, in order; a refused part fails the turn for good.
    Each part but the last is marked sent once the provider took it; the last part's
    mark is returned, for the transaction that closes the turn to store (one
    transaction fewer per turn, and no wider a window for a crash to resend it)."""
    outbound = runtime.channel(scene.channel.provider)
    unsent = [reply for reply in replies if reply.status == OutboundStatus.PENDING]
    last: SentPart | None = None
    for reply in unsent:
        if last is not None:
            async with runtime.sessionmaker.begin() as db:
                await last.mark(db)
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
        last = SentPart(reply.id, sent)
    return last


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
