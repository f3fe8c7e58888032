"""What a turn needs from the database, loaded in the transaction that starts or resumes
it: its messages, the reply recorded so far, the channel they came in on, the builder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, bindparam, case, inspect, null, select, type_coerce
from sqlalchemy.ext.asyncio import AsyncSession

from db.json_rows import from_json_row, json_row
from db.models import Base, Builder, Channel, InboundMessage, JSONDocument, OutboundMessage, Turn
from db.outbox import replies_of
from db.prepared import run
from db.turns import RunStats
from worker.errors import UndeliverableError
from worker.process.runtime import Runtime

NO_CHANNEL = "the conversation's channel or builder was removed"


@dataclass(frozen=True)
class LoadedTurn:
    """A turn with what it needs from the database: its messages, the reply this try
    recorded so far, the channel they came in on, the builder whose bot answers."""

    turn: Turn
    messages: list[InboundMessage]
    replies: list[OutboundMessage]
    channel: Channel
    builder: Builder
    run_stats: list[RunStats] = field(default_factory=list)
    """What this try's agent run cost, recorded with the turn when it closes or fails."""


def _whole_row(model: type[Base], dialect: str) -> ColumnElement[Any]:
    """`model`'s row as one JSON object, or NULL where the outer join found none."""
    key = inspect(model).primary_key[0]
    row = json_row(model.__table__.columns, dialect=dialect)
    return type_coerce(case((key.is_(None), null()), else_=row), JSONDocument)


def _turn_rows(dialect: str) -> Select[Any]:
    return (
        select(
            json_row(InboundMessage.__table__.columns, dialect=dialect),
            _whole_row(Channel, dialect),
            _whole_row(Builder, dialect),
        )
        .select_from(InboundMessage)
        .outerjoin(Channel, Channel.id == InboundMessage.channel_id)
        .outerjoin(Builder, Builder.id == Channel.builder_id)
        .where(InboundMessage.turn_id == bindparam("turn_id"))
        .order_by(InboundMessage.id)
    )


_TURN_ROWS = {dialect: _turn_rows(dialect) for dialect in ("postgresql", "sqlite")}
"""The turn's messages with their channel and builder, each row of them as one JSON
object: a prebuilt statement (`db.prepared.run`), so the new turn and the messages it
takes, deferred by `start_turn`, are sent with it in one round trip."""


async def load_turn(turn: Turn, *, db: AsyncSession, new: bool = False) -> LoadedTurn | None:
    """The turn's messages with their channel and builder in one statement (as stored
    now: transient objects, not the session's); the reply parts this try recorded too,
    unless the turn is `new` and so has none yet. None when the channel or the builder
    was removed: nobody can be answered."""
    rows = await run(db, _TURN_ROWS[db.get_bind().dialect.name], turn_id=turn.id)
    channel, builder = rows[0][1], rows[0][2]
    if channel is None or builder is None:
        return None
    replies = [] if new else await replies_of(turn.id, retry=turn.retries, db=db)
    return LoadedTurn(
        turn=turn,
        messages=[from_json_row(InboundMessage, row[0]) for row in rows],
        replies=replies,
        channel=from_json_row(Channel, channel),
        builder=from_json_row(Builder, builder),
    )


async def reload_turn(turn: Turn, *, runtime: Runtime) -> LoadedTurn:
    """The turn as stored now (a failed run may have saved its input meanwhile) and the rest."""
    async with runtime.sessionmaker() as db:
        fresh = await db.get(Turn, turn.id, populate_existing=True)
        assert fresh is not None
        loaded = await load_turn(fresh, db=db)
    if loaded is None:
        raise UndeliverableError(NO_CHANNEL)
    return loaded
