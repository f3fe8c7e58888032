"""The conversation's lease, as every holder takes it (the worker, the web chat, an
operator's reply or clear): one holder at a time, given back however its block ends."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AgentSessionRow, Channel
from db.sessions import LeaseLostError, get_or_create_session
from worker.conversation import lease as leases
from worker.conversation.lease import ConversationBusy, conversation_lease, take_lease
from worker.process.runtime import Runtime

SHORT_LEASE_SECONDS = 1.5
"""Renewed every 0.75 s: a margin a loaded CI machine keeps."""


async def new_conversation(
    db_sessions: async_sessionmaker[AsyncSession], channel: Channel
) -> uuid.UUID:
    async with db_sessions.begin() as db:
        return await get_or_create_session(channel.builder_id, "whatsapp", "+15550001", db=db)


async def lease_token(
    db_sessions: async_sessionmaker[AsyncSession], session_id: uuid.UUID
) -> uuid.UUID | None:
    async with db_sessions() as db:
        session = await db.get(AgentSessionRow, session_id)
    assert session is not None
    return session.lease_token


async def test_a_held_conversation_is_busy_for_everyone_else(
    db_sessions: async_sessionmaker[AsyncSession], channel: Channel, runtime: Runtime
) -> None:
    session_id = await new_conversation(db_sessions, channel)
    async with conversation_lease(session_id, runtime=runtime) as lease:
        assert await lease_token(db_sessions, session_id) == lease.token
        with pytest.raises(ConversationBusy, match="the bot is answering this conversation"):
            async with conversation_lease(session_id, runtime=runtime):
                pass
    assert await lease_token(db_sessions, session_id) is None


async def test_the_lease_is_given_back_when_the_block_raises(
    db_sessions: async_sessionmaker[AsyncSession], channel: Channel, runtime: Runtime
) -> None:
    session_id = await new_conversation(db_sessions, channel)
    with pytest.raises(RuntimeError, match="the body failed"):
        async with conversation_lease(session_id, runtime=runtime):
            raise RuntimeError("the body failed")
    assert await lease_token(db_sessions, session_id) is None
    async with conversation_lease(session_id, runtime=runtime):
        pass


async def test_a_give_back_whose_transaction_rolled_back_is_done_again(
    db_sessions: async_sessionmaker[AsyncSession], channel: Channel, runtime: Runtime
) -> None:
    session_id = await new_conversation(db_sessions, channel)
    async with runtime.sessionmaker.begin() as db:
        lease = await take_lease(session_id, runtime=runtime, db=db)
    with pytest.raises(RuntimeError, match="the commit never came"):
        async with lease:
            async with runtime.sessionmaker.begin() as db:
                await lease.give_back(db=db)
                raise RuntimeError("the commit never came")
    assert await lease_token(db_sessions, session_id) is None
    assert not runtime.leases.fresh(lease.token)


async def test_a_conversation_stays_held_past_its_lease_while_its_block_runs(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
) -> None:
    runtime = runtime_with(conversation_lease_seconds=SHORT_LEASE_SECONDS)
    session_id = await new_conversation(db_sessions, channel)
    async with conversation_lease(session_id, runtime=runtime) as lease:
        await asyncio.sleep(2 * SHORT_LEASE_SECONDS)  # a provider slow to take a reply
        with pytest.raises(ConversationBusy):
            async with conversation_lease(session_id, runtime=runtime):
                pass
        assert await lease_token(db_sessions, session_id) == lease.token
    assert await lease_token(db_sessions, session_id) is None


async def test_a_holder_whose_lease_was_taken_over_stops_at_its_next_step(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = runtime_with(conversation_lease_seconds=SHORT_LEASE_SECONDS)
    session_id = await new_conversation(db_sessions, channel)
    with caplog.at_level(logging.WARNING, logger="worker.conversation.lease"):
        async with conversation_lease(session_id, runtime=runtime) as lease:
            # Another worker took it over: this process stalled past the lease.
            async with db_sessions.begin() as db:
                await db.execute(
                    update(AgentSessionRow)
                    .where(AgentSessionRow.id == session_id)
                    .values(lease_token=uuid.uuid4())
                )
            await asyncio.sleep(SHORT_LEASE_SECONDS)  # its renewal found out meanwhile
            with pytest.raises(LeaseLostError):
                async with runtime.sessionmaker.begin() as db:
                    await lease.keep(db=db)
    assert [record.getMessage() for record in caplog.records] == [
        f"session {session_id}: its lease ran out and was taken over"
    ]


async def test_a_holder_silent_for_many_lifetimes_is_presumed_stuck_and_its_lease_runs_out(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(leases, "SILENT_HOLDER_LIFETIMES", 2)
    monkeypatch.setattr(leases, "SILENT_HOLDER_MIN_SECONDS", 0.0)
    runtime = runtime_with(conversation_lease_seconds=SHORT_LEASE_SECONDS)
    other = runtime_with(conversation_lease_seconds=SHORT_LEASE_SECONDS)
    session_id = await new_conversation(db_sessions, channel)
    with caplog.at_level(logging.WARNING, logger="worker.conversation.lease"):
        async with conversation_lease(session_id, runtime=runtime) as stuck:
            async with other.sessionmaker.begin() as db:
                await stuck.keep(db=db)  # its last act
            await asyncio.sleep(4 * SHORT_LEASE_SECONDS)  # silent for two lifetimes, then one
            async with conversation_lease(session_id, runtime=other) as successor:
                assert await lease_token(db_sessions, session_id) == successor.token
    [warning] = [record.getMessage() for record in caplog.records]
    assert re.fullmatch(
        f"session {session_id}: its holder has not acted for [34]s; its lease is left to run out",
        warning,
    )
