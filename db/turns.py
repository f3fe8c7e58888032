"""Turns: one agent run answering the pending messages of a conversation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.core.clock import as_utc
from db.models import AgentSessionRow, InboundMessage, InboundStatus, Turn, TurnStatus


async def resume_turn(session_id: uuid.UUID, *, db: AsyncSession) -> Turn | None:
    """The session's unfinished turn (a crashed run, or one an operator retried),
    counting this attempt. A retried turn's first attempt takes its messages back and
    notes where the history stands: an answer stored from there on is this retry's."""
    turn = await db.scalar(
        select(Turn)
        .where(Turn.session_id == session_id, Turn.status == TurnStatus.RUNNING)
        .order_by(Turn.created_at)
        .limit(1)
    )
    if turn is not None:
        if turn.attempts == 0:
            turn.retry_from_sequence = await db.scalar(
                select(AgentSessionRow.next_sequence).where(AgentSessionRow.id == session_id)
            )
        turn.attempts += 1
        await db.execute(
            update(InboundMessage)
            .where(InboundMessage.turn_id == turn.id)
            .values(status=InboundStatus.PROCESSING, attempts=InboundMessage.attempts + 1)
        )
        await db.flush()
    return turn


async def start_turn(session_id: uuid.UUID, message_ids: list[int], *, db: AsyncSession) -> Turn:
    """A new turn taking these pending messages (see `db.inbox.pending_arrivals`)."""
    turn = Turn(id=uuid.uuid4(), session_id=session_id, status=TurnStatus.RUNNING, attempts=1)
    db.add(turn)
    await db.flush()
    await db.execute(
        update(InboundMessage)
        .where(InboundMessage.id.in_(message_ids))
        .values(
            status=InboundStatus.PROCESSING,
            turn_id=turn.id,
            attempts=InboundMessage.attempts + 1,
        )
    )
    return turn


async def turns_started_since(
    session_id: uuid.UUID, since: datetime, *, db: AsyncSession
) -> list[datetime]:
    """When this session's turns since `since` started, oldest first (for rate limits)."""
    result = await db.scalars(
        select(Turn.created_at)
        .where(Turn.session_id == session_id, Turn.created_at >= since)
        .order_by(Turn.created_at)
    )
    return [as_utc(started) for started in result]


async def messages_of(turn_id: uuid.UUID, *, db: AsyncSession) -> list[InboundMessage]:
    result = await db.scalars(
        select(InboundMessage).where(InboundMessage.turn_id == turn_id).order_by(InboundMessage.id)
    )
    return list(result)


@dataclass(frozen=True)
class InputSaved:
    """A `db.agent_session.BatchMark`: the batch holds turn `turn_id`'s user input, so the
    turn notes when it was saved and the sequence its first item took."""

    turn_id: uuid.UUID
    postgres_cte: ClassVar[str] = (
        "input_saved AS (UPDATE turns SET input_saved_at = now(),"
        " input_sequence = locked.first_sequence FROM locked WHERE turns.id = %(turn_id)s)"
    )

    def parameters(self) -> dict[str, Any]:
        return {"turn_id": self.turn_id}

    async def record(self, conn: AsyncConnection, first_sequence: int) -> None:
        await conn.execute(
            update(Turn)
            .where(Turn.id == self.turn_id)
            .values(input_saved_at=datetime.now(UTC), input_sequence=first_sequence)
        )


@dataclass(frozen=True)
class RunStats:
    """What an agent run cost: shown per turn on the dashboard, beside its id in the logs."""

    model: str
    latency_ms: int
    input_tokens: int
    output_tokens: int


async def record_run_stats(turn_id: uuid.UUID, stats: RunStats, *, db: AsyncSession) -> None:
    await db.execute(
        update(Turn)
        .where(Turn.id == turn_id)
        .values(
            model=stats.model,
            latency_ms=stats.latency_ms,
            input_tokens=stats.input_tokens,
            output_tokens=stats.output_tokens,
        )
    )


async def record_turn_error(turn_id: uuid.UUID, error: str, *, db: AsyncSession) -> None:
    await db.execute(update(Turn).where(Turn.id == turn_id).values(error=error))


async def finish_turn(
    turn_id: uuid.UUID, *, failed_because: str | None = None, db: AsyncSession
) -> None:
    """Close the turn and its messages: replied, or failed with the reason, which joins
    the turn's `failed_tries` (an operator's retry shows them as its attempts)."""
    now = datetime.now(UTC)
    failed = failed_because is not None
    values: dict[str, Any] = {
        "status": TurnStatus.FAILED if failed else TurnStatus.REPLIED,
        "error": failed_because,
        "finished_at": now,
    }
    if failed:
        earlier = await db.scalar(select(Turn.failed_tries).where(Turn.id == turn_id))
        values["failed_tries"] = [
            *(earlier or []),
            {"at": now.isoformat(), "error": failed_because},
        ]
    await db.execute(update(Turn).where(Turn.id == turn_id).values(**values))
    await db.execute(
        update(InboundMessage)
        .where(InboundMessage.turn_id == turn_id)
        .values(
            status=InboundStatus.FAILED if failed else InboundStatus.PROCESSED,
            error=failed_because,
            processed_at=now,
        )
    )
