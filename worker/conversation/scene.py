"""What a turn works with, loaded in the transaction that starts or resumes it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Builder, Channel, InboundMessage, OutboundMessage, Turn
from db.outbox import replies_of
from worker.errors import UndeliverableError
from worker.process.runtime import Runtime

NO_CHANNEL = "the conversation's channel or builder was removed"


@dataclass(frozen=True)
class Scene:
    """What a turn works with: its messages, the reply so far, where it came in, whose bot."""

    turn: Turn
    messages: list[InboundMessage]
    replies: list[OutboundMessage]
    channel: Channel
    builder: Builder


async def scene_of(turn: Turn, *, db: AsyncSession, new: bool = False) -> Scene | None:
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
        )
    ).all()
    channel, builder = rows[0][1], rows[0][2]
    if channel is None or builder is None:
        return None
    replies = [] if new else await replies_of(turn.id, retry=turn.retries, db=db)
    return Scene(
        turn=turn,
        messages=[row[0] for row in rows],
        replies=replies,
        channel=channel,
        builder=builder,
    )


async def load_scene(turn: Turn, *, runtime: Runtime) -> Scene:
    """The turn as stored now (a failed run may have saved its input meanwhile) and the rest."""
    async with runtime.sessionmaker() as db:
        fresh = await db.get(Turn, turn.id, populate_existing=True)
        assert fresh is not None
        scene = await scene_of(fresh, db=db)
    if scene is None:
        raise UndeliverableError(NO_CHANNEL)
    return scene
