"""What an operator does to a conversation: pause the bot, resume it, forget the
history's turn markers, retry a failed turn, and record a human reply as a turn."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, case, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.attention import note_attention
from db.models import (
    AgentSessionRow,
    ArchivedItem,
    Channel,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
    Turn,
    TurnStatus,
)
from db.turns import session_of_turn


async def set_paused(session_id: uuid.UUID, paused: bool, *, db: AsyncSession) -> None:
    """Pause (a human takes over: inbound messages are stored, not answered) or resume."""
    await db.execute(
        update(AgentSessionRow)
        .where(AgentSessionRow.id == session_id)
        .values(paused_at=datetime.now(UTC) if paused else None)
    )


_answerable = exists().where(
    InboundMessage.turn_id == Turn.id, InboundMessage.channel_id.is_not(None)
)
"""The turn has messages a channel still routes (a human's reply has none)."""


async def retry_turn(turn_id: uuid.UUID, *, db: AsyncSession) -> list[int]:
    """Reopen a failed turn for the worker: the same turn answers the same messages, its
    input stored once (a turn whose input is not in the history, never stored or
    cleared with the memory, stores it then), its attempts counted afresh, and its reply
    recorded as this retry's, never an earlier try's (the fallback the user got). Returns
    its messages' ids, empty when the turn is not failed or has none to answer. They
    wait as pending, enqueued now, so the sweeper publishes them again only if no worker
    has taken them within `SWEEP_STALE_SECONDS`."""
    reopened = await db.execute(
        update(Turn)
        .where(Turn.id == turn_id, Turn.status == TurnStatus.FAILED, _answerable)
        .values(
            status=TurnStatus.RUNNING,
            attempts=0,
            retries=Turn.retries + 1,
            retry_from_sequence=None,
            finished_at=None,
            input_saved_at=case((Turn.input_sequence.is_(None), None), else_=Turn.input_saved_at),
        )
        .returning(Turn.id)
    )
    if reopened.first() is None:
        return []
    messages = await db.scalars(
        update(InboundMessage)
        .where(InboundMessage.turn_id == turn_id)
        .values(
            status=InboundStatus.PENDING,
            error=None,
            processed_at=None,
            enqueued_at=datetime.now(UTC),
        )
        .returning(InboundMessage.id)
    )
    return sorted(messages)


@dataclass(frozen=True)
class FailedTurn:
    id: uuid.UUID
    session_id: uuid.UUID
    paused: bool
    """Its conversation is paused: an operator has taken over."""


async def retryable_turns(
    *,
    session_ids: Sequence[uuid.UUID] = (),
    turn_ids: Sequence[uuid.UUID] = (),
    builder_id: uuid.UUID | None = None,
    db: AsyncSession,
) -> list[FailedTurn]:
    """Failed turns with messages to answer again, oldest first: of these sessions, these
    turns, or else every one (of the builder). Failed inbox messages outside any turn are
    not among them, nor turns whose channel is gone: their channel was removed, so no
    builder would answer them (and a message failed before its conversation was found
    has no conversation to go back to)."""
    query = (
        select(Turn.id, Turn.session_id, AgentSessionRow.paused_at)
        .join(AgentSessionRow, AgentSessionRow.id == Turn.session_id)
        .where(Turn.status == TurnStatus.FAILED, _answerable)
        .order_by(Turn.created_at)
    )
    if session_ids:
        query = query.where(Turn.session_id.in_(session_ids))
    if turn_ids:
        query = query.where(Turn.id.in_(turn_ids))
    if builder_id is not None:
        query = query.where(AgentSessionRow.builder_id == builder_id)
    rows = await db.execute(query)
    return [FailedTurn(id_, session_id, paused is not None) for id_, session_id, paused in rows]


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
            .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
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


_NOT_SENT = (OutboundStatus.PENDING, OutboundStatus.SENDING, OutboundStatus.FAILED)


async def fail_operator_turn(turn_id: uuid.UUID, reason: str, *, db: AsyncSession) -> None:
    """A human's reply that did not get out: the turn fails with `reason`, and so does its
    first part not sent (the one that failed; the later ones were never tried); its
    conversation needs attention."""
    unsent = (
        select(OutboundMessage.id)
        .where(OutboundMessage.turn_id == turn_id, OutboundMessage.status.in_(_NOT_SENT))
        .order_by(OutboundMessage.part)
        .limit(1)
        .scalar_subquery()
    )
    await db.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == unsent)
        .values(status=OutboundStatus.FAILED, error=reason, updated_at=datetime.now(UTC))
    )
    await db.execute(
        update(Turn).where(Turn.id == turn_id).values(status=TurnStatus.FAILED, error=reason)
    )
    await note_attention(session_of_turn(turn_id), db=db)


def unstored_messages_query(session_id: uuid.UUID) -> Select[InboundMessage]:
    """The conversation's messages not (yet) in its history: waiting for a turn (or for a
    resume), or taken by a turn that has not stored its input; by
    `ix_inbound_messages_pending`. Once a turn stores them they are items, shown from
    `session_items` instead."""
    return (
        select(InboundMessage)
        .outerjoin(Turn, Turn.id == InboundMessage.turn_id)
        .where(
            InboundMessage.session_id == session_id,
            InboundMessage.status.in_(
                [InboundStatus.PENDING, InboundStatus.PROCESSING, InboundStatus.FAILED]
            ),
            or_(InboundMessage.turn_id.is_(None), Turn.input_saved_at.is_(None)),
        )
        .order_by(InboundMessage.id)
    )


async def unstored_messages(session_id: uuid.UUID, *, db: AsyncSession) -> list[InboundMessage]:
    """`unstored_messages_query`'s messages, in arrival order."""
    return list(await db.scalars(unstored_messages_query(session_id)))


async def waiting_message_ids(session_id: uuid.UUID, *, db: AsyncSession) -> list[int]:
    """Pending messages no turn has taken, paused or not, in arrival order."""
    return list(
        await db.scalars(
            select(InboundMessage.id)
            .where(
                InboundMessage.session_id == session_id,
                InboundMessage.status == InboundStatus.PENDING,
                InboundMessage.turn_id.is_(None),
            )
            .order_by(InboundMessage.id)
        )
    )


async def human_replied_since_pause(session_id: uuid.UUID, *, db: AsyncSession) -> bool:
    """Whether an operator replied since the bot was paused (resuming then answers only
    what comes next, by default: the human answered what waited)."""
    replied = await db.scalar(
        select(Turn.id)
        .join(AgentSessionRow, AgentSessionRow.id == Turn.session_id)
        .where(
            Turn.session_id == session_id,
            Turn.by_operator.is_(True),
            AgentSessionRow.paused_at.is_not(None),
            Turn.created_at >= AgentSessionRow.paused_at,
        )
        .limit(1)
    )
    return replied is not None


async def archived_items(session_id: uuid.UUID, *, db: AsyncSession) -> list[ArchivedItem]:
    """What cleared memories forgot, oldest clearing first, each in its order."""
    return list(
        await db.scalars(
            select(ArchivedItem)
            .where(ArchivedItem.session_id == session_id)
            .order_by(ArchivedItem.cleared_at, ArchivedItem.sequence)
        )
    )
