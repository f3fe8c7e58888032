"""What an operator does to a conversation: pause the bot, resume it, forget the
history's turn markers, retry a failed turn, and record a human reply as a turn."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AgentSessionRow, Channel, InboundMessage, InboundStatus, Turn, TurnStatus


async def set_paused(session_id: uuid.UUID, paused: bool, *, db: AsyncSession) -> None:
    """Pause (a human takes over: inbound messages are stored, not answered) or resume."""
    await db.execute(
        update(AgentSessionRow)
        .where(AgentSessionRow.id == session_id)
        .values(paused_at=datetime.now(UTC) if paused else None)
    )


async def retry_turn(turn_id: uuid.UUID, *, db: AsyncSession) -> list[int]:
    """Hand a failed turn's messages back to the worker as new pending messages (a new
    turn answers them); returns their ids, empty when the turn is not failed."""
    failed = await db.execute(
        update(Turn)
        .where(Turn.id == turn_id, Turn.status == TurnStatus.FAILED)
        .values(status=TurnStatus.RETRIED)
        .returning(Turn.id)
    )
    if failed.first() is None:
        return []
    reopened = await db.scalars(
        update(InboundMessage)
        .where(InboundMessage.turn_id == turn_id)
        .values(status=InboundStatus.PENDING, turn_id=None, error=None, processed_at=None)
        .returning(InboundMessage.id)
    )
    return sorted(reopened)


async def forget_turn_positions(session_id: uuid.UUID, *, db: AsyncSession) -> None:
    """After the history was cleared its sequence numbers start again at 0: finished
    turns no longer point at items (else they would decorate the new ones)."""
    await db.execute(
        update(Turn)
        .where(Turn.session_id == session_id, Turn.status != TurnStatus.RUNNING)
        .values(input_sequence=None)
    )


async def reply_route(session_id: uuid.UUID, *, db: AsyncSession) -> tuple[Channel, str] | None:
    """Where a human reply goes: the channel and sender of the user's latest message."""
    row = (
        await db.execute(
            select(Channel, InboundMessage.sender)
            .join(InboundMessage, InboundMessage.channel_id == Channel.id)
            .where(InboundMessage.session_id == session_id)
            .order_by(InboundMessage.id.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def record_operator_turn(
    session_id: uuid.UUID, item_sequence: int, *, db: AsyncSession
) -> Turn:
    """A finished turn standing for a human's reply (its outbound parts hang off it)."""
    now = datetime.now(UTC)
    turn = Turn(
        id=uuid.uuid4(),
        session_id=session_id,
        status=TurnStatus.REPLIED,
        attempts=1,
        by_operator=True,
        input_saved_at=now,
        input_sequence=item_sequence,
        finished_at=now,
    )
    db.add(turn)
    await db.flush()
    return turn


async def fail_operator_turn(turn_id: uuid.UUID, reason: str, *, db: AsyncSession) -> None:
    await db.execute(
        update(Turn).where(Turn.id == turn_id).values(status=TurnStatus.FAILED, error=reason)
    )
