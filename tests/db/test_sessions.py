"""Sessions are created once per user however many writers race, and a conversation's
lease admits one holder at a time until it expires."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import create_builder
from db.sessions import (
    LeaseLostError,
    acquire_lease,
    get_or_create_session,
    release_lease,
    renew_lease,
)


async def a_builder(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    async with sessions.begin() as db:
        return (await create_builder(name="b", instructions="i", model="m", db=db)).id


async def test_concurrent_get_or_create_session_yields_one_session(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    builder_id = await a_builder(db_sessions)

    async def get_or_create() -> uuid.UUID:
        async with db_sessions.begin() as db:
            return await get_or_create_session(builder_id, "whatsapp", "+31612345678", db=db)

    ids = await asyncio.gather(*(get_or_create() for _ in range(20)))
    assert len(set(ids)) == 1
    async with db_sessions.begin() as db:
        other = await get_or_create_session(builder_id, "web", "+31612345678", db=db)
    assert other != ids[0]


async def test_a_lease_has_one_holder_until_released_or_expired(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    builder_id = await a_builder(db_sessions)
    async with db_sessions.begin() as db:
        session_id = await get_or_create_session(builder_id, "whatsapp", "+1", db=db)
        first = await acquire_lease(session_id, ttl_seconds=60, db=db)
        assert first is not None
        assert await acquire_lease(session_id, ttl_seconds=60, db=db) is None
        await release_lease(session_id, first.token, db=db)
        second = await acquire_lease(session_id, ttl_seconds=0, db=db)
        assert second is not None
        third = await acquire_lease(session_id, ttl_seconds=60, db=db)  # second expired
        assert third is not None
    with pytest.raises(LeaseLostError):  # the stale holder's renewal, on its next statement
        async with db_sessions.begin() as db:
            await renew_lease(session_id, second.token, ttl_seconds=60, db=db)
            await get_or_create_session(builder_id, "whatsapp", "+1", db=db)
    async with db_sessions.begin() as db:
        await release_lease(session_id, second.token, db=db)  # a stale holder releases nothing
        assert await acquire_lease(session_id, ttl_seconds=60, db=db) is None
        await renew_lease(session_id, third.token, ttl_seconds=60, db=db)  # the holder's, on commit
