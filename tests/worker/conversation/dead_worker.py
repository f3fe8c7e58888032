"""What a worker leaves when it dies in the middle of a turn."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.inbox import get_inbound
from db.models import Channel
from db.sessions import acquire_lease, get_or_create_session
from db.turn_session import TurnSession
from db.turns import start_turn
from worker.conversation.inbound import conversation_key


async def turn_of_a_dead_worker(
    sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    inbound_id: int,
    *,
    engine: AsyncEngine,
) -> TurnSession:
    """The session a worker that died mid-turn wrote through: its turn started on the
    message, its lease already run out. The test stores with it what the worker had."""
    async with sessions.begin() as db:
        inbound_row = await get_inbound(inbound_id, db=db)
        assert inbound_row is not None
        key = conversation_key(inbound_row)
        session_id = await get_or_create_session(channel.builder_id, "whatsapp", key, db=db)
        inbound_row.session_id = session_id
        lease = await acquire_lease(session_id, ttl_seconds=0, db=db)
        turn = await start_turn(session_id, [inbound_id], db=db)
    assert lease is not None
    return TurnSession(
        session_id, engine=engine, turn_id=turn.id, lease_token=lease.token, saves_input=True
    )
