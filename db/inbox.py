"""The inbox: provider messages recorded before the webhook answers, deduplicated."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.clock import as_utc
from db.models import AgentSessionRow, InboundMessage, InboundStatus
from db.upsert import insert_or_ignore


@dataclass(frozen=True)
class ReceivedMessage:
    """A provider message as a webhook read it, before it is routed and recorded.

    `recipient` is our address (a Twilio number, a Meta phone number id); `sender` is
    whom to reply to; `text` is already what the agent should read.
    """

    provider: str
    provider_message_id: str
    recipient: str
    sender: str
    sender_wa_id: str | None
    sender_user_id: str | None
    profile_name: str | None
    kind: str
    text: str
    media: list[dict[str, str]]
    payload: dict[str, Any]


async def record_inbound(
    message: ReceivedMessage, *, channel_id: uuid.UUID | None, db: AsyncSession
) -> int | None:
    """Store a delivery; None when the provider already delivered this message id.

    A message for an address no builder owns is kept as `unroutable` so nothing is lost
    and the provider still gets its 200.
    """
    status = InboundStatus.PENDING if channel_id else InboundStatus.UNROUTABLE
    inserted = await db.execute(
        insert_or_ignore(InboundMessage, db=db)
        .values(**asdict(message), channel_id=channel_id, status=status)
        .returning(InboundMessage.id)
    )
    return inserted.scalar()


async def get_inbound(inbound_id: int, *, db: AsyncSession) -> InboundMessage | None:
    return await db.get(InboundMessage, inbound_id)


async def attach_latecomers(session_id: uuid.UUID, *, db: AsyncSession) -> None:
    """Attach messages that arrived from this conversation's sender since it was last
    looked at, before their own tasks ran, so the next turn can include them."""
    known_senders = (
        select(InboundMessage.channel_id, InboundMessage.sender)
        .where(InboundMessage.session_id == session_id)
        .distinct()
    )
    await db.execute(
        update(InboundMessage)
        .where(
            InboundMessage.session_id.is_(None),
            InboundMessage.status == InboundStatus.PENDING,
            tuple_(InboundMessage.channel_id, InboundMessage.sender).in_(known_senders),
        )
        .values(session_id=session_id)
    )


async def pending_ids(session_id: uuid.UUID, *, db: AsyncSession) -> list[int]:
    """Pending messages of a conversation in the order they arrived."""
    result = await db.scalars(
        select(InboundMessage.id)
        .where(
            InboundMessage.session_id == session_id,
            InboundMessage.status == InboundStatus.PENDING,
        )
        .order_by(InboundMessage.id)
    )
    return list(result)


async def newest_pending_at(session_id: uuid.UUID, *, db: AsyncSession) -> datetime | None:
    """When the latest pending message of a conversation arrived; None if none is pending."""
    newest = await db.scalar(
        select(func.max(InboundMessage.received_at)).where(
            InboundMessage.session_id == session_id,
            InboundMessage.status == InboundStatus.PENDING,
        )
    )
    return as_utc(newest) if newest else None


async def fail_inbound(inbound_id: int, *, error: str, db: AsyncSession) -> None:
    """Close a message that cannot be answered, keeping the reason."""
    await db.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id)
        .values(status=InboundStatus.FAILED, error=error, processed_at=datetime.now(UTC))
    )


async def claim_stranded(*, older_than: datetime, limit: int, db: AsyncSession) -> list[int]:
    """Routable messages still unanswered since `older_than` whose conversation nobody
    holds: their task was never published (broker down) or was lost. Marks them
    enqueued now, so concurrent or later sweeps skip them for another period."""
    now = datetime.now(UTC)
    stranded = (
        select(InboundMessage.id)
        .outerjoin(AgentSessionRow, AgentSessionRow.id == InboundMessage.session_id)
        .where(
            InboundMessage.status.in_([InboundStatus.PENDING, InboundStatus.PROCESSING]),
            InboundMessage.channel_id.is_not(None),
            func.coalesce(InboundMessage.enqueued_at, InboundMessage.received_at) < older_than,
            or_(
                AgentSessionRow.lease_expires_at.is_(None),
                AgentSessionRow.lease_expires_at < now,
            ),
        )
        .order_by(InboundMessage.id)
        .limit(limit)
        .with_for_update(of=InboundMessage, skip_locked=True)
    )
    ids = list(await db.scalars(stranded))
    if ids:
        await db.execute(
            update(InboundMessage).where(InboundMessage.id.in_(ids)).values(enqueued_at=now)
        )
    return ids
