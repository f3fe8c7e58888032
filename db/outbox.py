"""Outbound replies: recorded before sending (idempotent per turn and part), then
advanced by send results and provider delivery callbacks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import case, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Channel, OutboundMessage, OutboundStatus
from db.upsert import insert_or_ignore

# Delivery states only move forward: a late `sent` callback never overwrites `read`.
STATUS_RANK = {
    OutboundStatus.PENDING: 0,
    OutboundStatus.QUEUED: 1,
    OutboundStatus.SENT: 2,
    OutboundStatus.DELIVERED: 3,
    OutboundStatus.READ: 4,
    OutboundStatus.UNDELIVERED: 5,
    OutboundStatus.FAILED: 5,
}


async def record_reply(
    *,
    session_id: uuid.UUID,
    turn_id: uuid.UUID,
    retry: int,
    channel_id: uuid.UUID | None,
    recipient: str,
    parts: list[str],
    db: AsyncSession,
) -> list[OutboundMessage]:
    """Record the reply's parts once per try of a turn (one statement); a resumed try
    gets the rows it recorded before, a retry of a failed turn records its own."""
    recorded = await db.scalars(
        insert_or_ignore(OutboundMessage, db=db).returning(OutboundMessage),
        [
            {
                "id": uuid.uuid4(),
                "session_id": session_id,
                "turn_id": turn_id,
                "retry": retry,
                "part": index,
                "channel_id": channel_id,
                "recipient": recipient,
                "text": text,
                "status": OutboundStatus.PENDING,
            }
            for index, text in enumerate(parts)
        ],
    )
    new_rows = sorted(recorded, key=lambda reply: reply.part)
    if len(new_rows) == len(parts):
        return new_rows
    return await replies_of(turn_id, retry=retry, db=db)


async def replies_of(turn_id: uuid.UUID, *, retry: int, db: AsyncSession) -> list[OutboundMessage]:
    """The reply parts try `retry` of the turn recorded."""
    result = await db.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.turn_id == turn_id, OutboundMessage.retry == retry)
        .order_by(OutboundMessage.part)
    )
    return list(result)


async def reached_user_before(turn_id: uuid.UUID, *, retry: int, db: AsyncSession) -> bool:
    """Whether a try of the turn before `retry` got a reply to the user (its fallback)."""
    reached = [
        OutboundStatus.QUEUED,
        OutboundStatus.SENT,
        OutboundStatus.DELIVERED,
        OutboundStatus.READ,
    ]
    earlier = exists().where(
        OutboundMessage.turn_id == turn_id,
        OutboundMessage.retry < retry,
        OutboundMessage.status.in_(reached),
    )
    return bool(await db.scalar(select(earlier)))


async def mark_sent(
    outbound_id: uuid.UUID, *, provider_message_id: str, status: str, db: AsyncSession
) -> None:
    now = datetime.now(UTC)
    await db.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == outbound_id)
        .values(provider_message_id=provider_message_id, status=status, sent_at=now, updated_at=now)
    )


async def mark_send_failed(outbound_id: uuid.UUID, *, error: str, db: AsyncSession) -> None:
    await db.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == outbound_id)
        .values(status=OutboundStatus.FAILED, error=error, updated_at=datetime.now(UTC))
    )


async def apply_delivery_status(
    provider_message_id: str,
    status: OutboundStatus,
    *,
    error: str | None,
    provider: str,
    address: str,
    db: AsyncSession,
) -> bool:
    """Advance a sent message's status from a provider callback, never backwards, and
    only a message sent from the channel at `address`: the number whose credentials
    verified the callback, so one number's credentials never speak for another's
    replies. One statement, by two unique indexes.

    Returns False when that channel sent no message with this provider id, or the update
    was stale.
    """
    current_rank = case(
        {str(state): rank for state, rank in STATUS_RANK.items()},
        value=OutboundMessage.status,
        else_=0,
    )
    channel = select(Channel.id).where(Channel.provider == provider, Channel.address == address)
    updated = await db.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.provider_message_id == provider_message_id,
            OutboundMessage.channel_id == channel.scalar_subquery(),
            current_rank < STATUS_RANK[status],
        )
        .values(status=status, error=error, updated_at=datetime.now(UTC))
        .returning(OutboundMessage.id)
    )
    return updated.first() is not None
