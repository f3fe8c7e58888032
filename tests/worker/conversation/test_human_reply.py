"""A human's reply from the dashboard, sent the way the bot's replies are: part by part,
each marked before it goes out, and a refusal recorded on the part and its turn."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AgentSessionRow, Channel, Turn
from tests.factories import arrive
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_items
from worker.conversation.delivery import SEND_ATTEMPTS
from worker.conversation.human_reply import reply_as_human
from worker.conversation.inbound import process_inbound
from worker.conversation.lease import ConversationBusy, conversation_lease
from worker.process.runtime import Runtime

THREE_PARTS = "\n\n".join(letter * 1500 for letter in "abc")


@pytest.fixture
async def session_id(
    db_sessions: async_sessionmaker[AsyncSession], channel: Channel, runtime: Runtime
) -> uuid.UUID:
    """A WhatsApp conversation the bot has answered once."""
    await process_inbound(await arrive(db_sessions, channel, "Hi"), runtime=runtime)
    async with db_sessions() as db:
        session_id = await db.scalar(select(AgentSessionRow.id))
    assert session_id is not None
    return session_id


async def operator_turn(db_sessions: async_sessionmaker[AsyncSession]) -> Turn:
    async with db_sessions() as db:
        turn = await db.scalar(select(Turn).where(Turn.by_operator))
    assert turn is not None
    return turn


async def test_a_reply_refused_midway_keeps_what_went_out_and_fails_the_rest(
    session_id: uuid.UUID,
    db_sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    fake_twilio.chaos = lambda: (400, 21211) if len(fake_twilio.messages) == 2 else None

    parts = await reply_as_human(session_id, THREE_PARTS, runtime=runtime)

    assert [part.status for part in parts] == ["queued", "failed", "pending"]
    assert (parts[1].error or "").startswith("send failed: ")
    assert [m["Body"][0] for m in fake_twilio.messages[1:]] == ["a"]
    turn = await operator_turn(db_sessions)
    assert (turn.status, turn.error) == ("failed", parts[1].error)
    assert (await all_items(db_sessions))[-1] == {"role": "assistant", "content": THREE_PARTS}


async def test_a_reply_the_provider_keeps_refusing_for_now_is_failed_not_left_pending(
    session_id: uuid.UUID,
    db_sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    fake_twilio.failures.extend([(503, 20500)] * SEND_ATTEMPTS)

    [part] = await reply_as_human(session_id, "Sam here.", runtime=runtime)

    assert part.status == "failed" and (part.error or "").startswith("send failed: ")
    assert (await operator_turn(db_sessions)).status == "failed"
    assert len(fake_twilio.messages) == 1  # the bot's answer only


async def test_a_reply_waits_for_no_turn_it_would_land_inside(
    session_id: uuid.UUID,
    db_sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    before = await all_items(db_sessions)
    async with conversation_lease(session_id, runtime=runtime):  # a turn in flight
        with pytest.raises(ConversationBusy):
            await reply_as_human(session_id, "Sam here.", runtime=runtime)
    assert await all_items(db_sessions) == before
    assert len(fake_twilio.messages) == 1
