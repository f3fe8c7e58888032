"""What a turn loads (`load_turn`: one prebuilt statement, each row as one JSON object)
is what the ORM reads from the same rows, column by column and type by type, on
Postgres and on the embedded SQLite."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from sqlalchemy import inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.core.clock import as_utc
from db.models import Base, Builder, Channel, InboundMessage
from db.sessions import get_or_create_session
from db.turns import start_turn
from tests.factories import arrive, builder_with_channel, channel_at
from worker.conversation.loaded_turn import load_turn


def columns(row: Base) -> dict[str, tuple[type, Any]]:
    """Every column's value with its type; times in UTC (SQLite's come back naive)."""
    values = {attribute.key: getattr(row, attribute.key) for attribute in inspect(row).attrs}
    return {
        key: (type(value), as_utc(value) if isinstance(value, datetime) else value)
        for key, value in values.items()
    }


async def test_a_turn_loads_its_rows_as_the_orm_reads_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    address = f"whatsapp:+1415523{random.randrange(10_000):04d}"
    builder_id = await builder_with_channel(sessions, address=address, voice_replies=True)
    async with sessions.begin() as db:  # a float JSON writes as a whole number
        await db.execute(
            update(Builder).where(Builder.id == builder_id).values(temperature=1.0, max_tokens=80)
        )
    channel = await channel_at(sessions, address)
    photo = [{"url": "https://api.twilio.com/m/1", "content_type": "image/jpeg", "bytes": 51234}]
    ids = [
        await arrive(sessions, channel, "Two loaves, please", media=photo, kind="image"),
        await arrive(sessions, channel, "And a croissant 🥐"),
    ]
    async with sessions.begin() as db:
        session_id = await get_or_create_session(builder_id, "whatsapp", address, db=db)
        await db.execute(
            update(InboundMessage).where(InboundMessage.id.in_(ids)).values(session_id=session_id)
        )

    async with sessions.begin() as db:
        turn = await start_turn(session_id, ids, db=db)
        loaded = await load_turn(turn, db=db, new=True)

    assert loaded is not None
    async with sessions() as db:
        stored = await db.scalars(
            select(InboundMessage).where(InboundMessage.id.in_(ids)).order_by(InboundMessage.id)
        )
        assert [columns(message) for message in loaded.messages] == [columns(m) for m in stored]
        assert columns(loaded.channel) == columns(await db.get_one(Channel, channel.id))
        assert columns(loaded.builder) == columns(await db.get_one(Builder, builder_id))
    assert [message.status for message in loaded.messages] == ["processing", "processing"]
    assert loaded.messages[0].media == photo
    assert loaded.builder.temperature == 1.0
