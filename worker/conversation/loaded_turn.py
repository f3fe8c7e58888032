"""What a turn needs from the database, loaded in the transaction that starts or resumes
it: its messages, the reply recorded so far, the channel they came in on, the builder."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Builder, Channel, InboundMessage, OutboundMessage, Turn
from db.outbox import replies_of
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


async def load_turn(turn: Turn, *, db: AsyncSession, new: bool = False) -> LoadedTurn | None:
    """The turn's messages with their channel and builder in one query; the reply parts
    this try recorded too, unless the turn is `new` and so has none yet. None when the
    channel or the builder was removed: nobody can be answered."""
    rows = (
        await db.execute(
            select(InboundMessage, Channel, Builder)
            .outerjoin(Channel, Channel.id == InboundMessage.channel_id)
            .outerjoin(Builder, Builder.id == Channel.builder_id)
            .where(InboundMessage.turn_id == turn.id)
            .order_by(InboundMessage.id)
            # The messages as stored now: `start_turn` took them by a statement that
            # does not touch the ones this session already holds.
            .execution_options(populate_existing=True)
        )
    ).all()
    channel, builder = rows[0][1], rows[0][2]
    if channel is None or builder is None:
        return None
    replies = [] if new else await replies_of(turn.id, retry=turn.retries, db=db)
    return LoadedTurn(
        turn=turn,
        messages=[row[0] for row in rows],
        replies=replies,
        channel=channel,
        builder=builder,
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
