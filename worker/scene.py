"""What a turn works with, loaded once per attempt."""

from __future__ import annotations

from dataclasses import dataclass

from db.builders import get_builder
from db.models import Builder, Channel, InboundMessage, OutboundMessage, Turn
from db.outbox import replies_of
from db.turns import messages_of
from worker.runtime import Runtime
from worker.turn_errors import UndeliverableError


@dataclass(frozen=True)
class Scene:
    """What a turn works with: its messages, the reply so far, where it came in, whose bot."""

    turn: Turn
    messages: list[InboundMessage]
    replies: list[OutboundMessage]
    channel: Channel
    builder: Builder


async def load_scene(turn: Turn, *, runtime: Runtime) -> Scene:
    """The turn as stored now (a failed run may have saved its input meanwhile) and the rest."""
    async with runtime.sessionmaker() as db:
        fresh = await db.get(Turn, turn.id)
        assert fresh is not None
        messages = await messages_of(turn.id, db=db)
        replies = await replies_of(turn.id, db=db)
        channel = await db.get(Channel, messages[0].channel_id) if messages[0].channel_id else None
        builder = await get_builder(channel.builder_id, db=db) if channel else None
    if channel is None or builder is None:
        raise UndeliverableError("the conversation's channel or builder was removed")
    return Scene(turn=fresh, messages=messages, replies=replies, channel=channel, builder=builder)
