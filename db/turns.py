"""Turns: one agent run answering the pending messages of a conversation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Update,
    any_,
    bindparam,
    false,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.attention import note_attention
from db.models import AgentSessionRow, InboundMessage, InboundStatus, Turn, TurnStatus
from db.prepared import defer, run


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
    """A new turn taking these pending messages (see `db.inbox.pending_arrivals`): both
    written with the transaction's next statement, which reads them (`load_turn`). The
    turn returned is not in `db`: it holds what was written."""
    turn = Turn(id=uuid.uuid4(), session_id=session_id, created_at=datetime.now(UTC), **_NEW)
    await defer(db, _START_TURN, id=turn.id, session_id=session_id, created_at=turn.created_at)
    take = _TAKE_MESSAGES[db.get_bind().dialect.name]
    await defer(db, take, message_ids=message_ids, the_turn=turn.id)
    return turn


_NEW = {"status": TurnStatus.RUNNING, "attempts": 1, "by_operator": False, "retries": 0}
_START_TURN = insert(Turn).values(
    {name: bindparam(name) for name in ("id", "session_id", "created_at")}
    | _NEW
    | {"by_operator": false()}  # as SQL: a bound boolean goes through SQLAlchemy's processor
)


def _take_messages(these: ColumnElement[bool]) -> Update:
    return (
        update(InboundMessage)
        .where(these)
        .values(
            status=InboundStatus.PROCESSING,
            turn_id=bindparam("the_turn"),
            attempts=InboundMessage.attempts + 1,
        )
    )


_TAKE_MESSAGES = {
    # An array parameter, which psycopg sends as it is (an expanded IN list would be
    # built by SQLAlchemy on every call).
    "postgresql": _take_messages(InboundMessage.id == any_(bindparam("message_ids"))),
    "sqlite": _take_messages(InboundMessage.id.in_(bindparam("message_ids", expanding=True))),
}


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


RUN_STATS_COLUMNS = ("model", "latency_ms", "input_tokens", "output_tokens")


def _latest_run(column: str) -> Any:
    """The run's figure when one is given, else the one the turn holds (a try that ends
    without running the agent, reusing an earlier try's answer, keeps that try's)."""
    mapped = Turn.__table__.c[column]
    return func.coalesce(bindparam(f"run_{column}", type_=mapped.type), mapped)


_RUN_STATS = {column: _latest_run(column) for column in RUN_STATS_COLUMNS}

_RECORD_TURN_ERROR = (
    update(Turn)
    .where(Turn.id == bindparam("turn_id"))
    .values(error=bindparam("new_error"), **_RUN_STATS)
)


async def record_turn_error(
    turn_id: uuid.UUID, error: str, *, stats: RunStats | None = None, db: AsyncSession
) -> None:
    """Note why this try failed (it will be retried), with what its agent run cost."""
    await run(db, _RECORD_TURN_ERROR, turn_id=turn_id, new_error=error, **_stats_params(stats))


_FINISH_TURN = (
    update(Turn)
    .where(Turn.id == bindparam("turn_id"))
    .values(
        status=bindparam("new_status"),
        error=bindparam("failed_because"),
        finished_at=bindparam("now"),
        **_RUN_STATS,
    )
)
_CLOSE_MESSAGES = (
    update(InboundMessage)
    .where(InboundMessage.turn_id == bindparam("the_turn"))
    .values(
        status=bindparam("new_status"),
        error=bindparam("failed_because"),
        processed_at=bindparam("now"),
    )
)


async def finish_turn(
    turn_id: uuid.UUID,
    *,
    failed_because: str | None = None,
    stats: RunStats | None = None,
    db: AsyncSession,
) -> None:
    """Close the turn and its messages: replied, or failed with the reason, which joins
    the turn's `failed_tries` (an operator's retry shows them as its attempts) and
    notes its conversation as needing attention; `stats`: what this try's agent run
    cost, recorded in the same statement."""
    now = datetime.now(UTC)
    if failed_because is not None:
        earlier = await db.scalar(select(Turn.failed_tries).where(Turn.id == turn_id))
        await db.execute(
            update(Turn)
            .where(Turn.id == turn_id)
            .values(
                failed_tries=[*(earlier or []), {"at": now.isoformat(), "error": failed_because}]
            )
        )
        await note_attention(session_of_turn(turn_id), db=db)
    params: dict[str, Any] = {"turn_id": turn_id, "failed_because": failed_because, "now": now}
    await defer(
        db,
        _FINISH_TURN,
        new_status=TurnStatus.REPLIED if failed_because is None else TurnStatus.FAILED,
        **params,
        **_stats_params(stats),
    )
    await defer(
        db,
        _CLOSE_MESSAGES,
        new_status=InboundStatus.PROCESSED if failed_because is None else InboundStatus.FAILED,
        the_turn=turn_id,
        failed_because=failed_because,
        now=now,
    )


def session_of_turn(turn_id: uuid.UUID) -> ScalarSelect[uuid.UUID]:
    """The id of the turn's conversation, as a subquery of the statement it goes in."""
    return select(Turn.session_id).where(Turn.id == turn_id).scalar_subquery()


def _stats_params(stats: RunStats | None) -> dict[str, Any]:
    return {
        f"run_{column}": None if stats is None else getattr(stats, column)
        for column in RUN_STATS_COLUMNS
    }
