"""The sweeper re-enqueues stranded inbox messages once per period, never one whose
conversation is being answered, however many workers sweep at once; and it rolls up the
dashboard's activity, each row once."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.activity import SETTLED_AFTER
from db.attention import note_attention
from db.core.settings import Settings
from db.inbox import record_inbound
from db.models import (
    ActivityDay,
    ActivityRollup,
    AttentionCandidate,
    InboundMessage,
    SessionItem,
    Turn,
)
from db.sessions import acquire_lease, get_or_create_session
from tests.factories import BOT_NUMBER, builder_with_channel, received_twilio_text
from tests.waiting import eventually
from worker.process.runtime import Runtime, create_runtime
from worker.process.sweeper import (
    forget_recovered_conversations,
    roll_up_settled_activity,
    sweep_forever,
    sweep_once,
)


@pytest.fixture
async def runtime(
    settings: Settings, db_sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Runtime]:
    runtime = create_runtime(settings.model_copy(update={"sweep_stale_seconds": 60}))
    yield runtime
    await runtime.aclose()


async def stranded_message(
    sessions: async_sessionmaker[AsyncSession], *, to: str = BOT_NUMBER, age_seconds: float = 120
) -> int:
    async with sessions.begin() as db:
        [recorded] = await record_inbound(
            [
                received_twilio_text("hello?", to=to),
            ],
            db=db,
        )
        inbound_id = recorded.inbound_id
        assert inbound_id is not None
        await db.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id)
            .values(received_at=datetime.now(UTC) - timedelta(seconds=age_seconds))
        )
        return inbound_id


class Published(list[int]):
    async def __call__(self, inbound_ids: Sequence[int]) -> None:
        self.extend(inbound_ids)


async def test_a_stranded_message_is_re_enqueued_once_per_period(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime
) -> None:
    await builder_with_channel(db_sessions)
    stranded = await stranded_message(db_sessions)
    fresh = await stranded_message(db_sessions, age_seconds=0)
    unroutable = await stranded_message(db_sessions, to="whatsapp:+19999999999")
    published = Published()
    assert await sweep_once(runtime, published) == 1
    assert await sweep_once(runtime, published) == 0
    assert published == [stranded]
    assert fresh not in published and unroutable not in published


async def test_a_message_whose_conversation_is_leased_is_left_to_its_holder(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime
) -> None:
    builder_id = await builder_with_channel(db_sessions)
    inbound_id = await stranded_message(db_sessions)
    async with db_sessions.begin() as db:
        session_id = await get_or_create_session(builder_id, "whatsapp", "+31612345678", db=db)
        await db.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbound_id)
            .values(session_id=session_id)
        )
        assert await acquire_lease(session_id, ttl_seconds=60, db=db) is not None
    published = Published()
    assert await sweep_once(runtime, published) == 0


async def test_concurrent_sweeps_enqueue_each_message_once(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime, settings: Settings
) -> None:
    await builder_with_channel(db_sessions)
    stranded = {await stranded_message(db_sessions) for _ in range(30)}
    others = [create_runtime(runtime.settings) for _ in range(3)]
    published = Published()
    try:
        counts = await asyncio.gather(
            *(sweep_once(worker, published) for worker in [runtime, *others])
        )
    finally:
        for worker in others:
            await worker.aclose()
    assert sum(counts) == 30
    assert sorted(published) == sorted(stranded)


async def a_message_two_hours_ago(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    builder_id = await builder_with_channel(sessions)
    async with sessions.begin() as db:
        session_id = await get_or_create_session(builder_id, "whatsapp", "+31612345678", db=db)
        db.add(
            SessionItem(
                session_id=session_id,
                item_data={"role": "user", "content": "hello?"},
                sequence=0,
                created_at=datetime.now(UTC) - timedelta(hours=2),
            )
        )
    return builder_id


async def rolled_up(
    sessions: async_sessionmaker[AsyncSession],
) -> tuple[datetime, list[int]] | None:
    """The watermark and the messages counted per day, once rolled up."""
    async with sessions() as db:
        watermark = await db.scalar(select(ActivityRollup.rolled_up_to))
        messages = list(await db.scalars(select(ActivityDay.messages)))
        return None if watermark is None else (watermark, messages)


async def test_the_sweeper_rolls_up_the_settled_activity(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime
) -> None:
    await a_message_two_hours_ago(db_sessions)
    started = datetime.now(UTC)
    sweeping = asyncio.create_task(sweep_forever(runtime, Published()))
    try:
        watermark, messages = await eventually(
            partial(rolled_up, db_sessions), within=10, what="the roll-up"
        )
    finally:
        sweeping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeping
    settled = (started - SETTLED_AFTER).replace(second=0, microsecond=0)
    assert watermark in (settled, settled + timedelta(minutes=1))
    assert messages == [1]


async def test_concurrent_roll_ups_count_each_row_once(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime
) -> None:
    await a_message_two_hours_ago(db_sessions)
    others = [create_runtime(runtime.settings) for _ in range(3)]
    try:
        await asyncio.gather(*(roll_up_settled_activity(worker) for worker in [runtime, *others]))
    finally:
        for worker in others:
            await worker.aclose()
    kept = await rolled_up(db_sessions)
    assert kept is not None and kept[1] == [1]


async def test_the_sweeper_forgets_conversations_noted_for_attention_that_recovered(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime
) -> None:
    builder_id = await builder_with_channel(db_sessions)
    async with db_sessions.begin() as db:
        answered = await get_or_create_session(builder_id, "whatsapp", "+31612345678", db=db)
        failing = await get_or_create_session(builder_id, "whatsapp", "+31612345679", db=db)
        for session_id, status in ((answered, "replied"), (failing, "failed")):
            db.add(Turn(id=uuid.uuid4(), session_id=session_id, status=status, attempts=1))
            await note_attention(session_id, db=db)
        await db.execute(
            update(AttentionCandidate).values(noted_at=datetime.now(UTC) - timedelta(hours=1))
        )
    forgotten = [await forget_recovered_conversations(runtime) for _ in range(2)]
    async with db_sessions() as db:
        kept = list(await db.scalars(select(AttentionCandidate.session_id)))
    assert forgotten == [1, 0]
    assert kept == [failing]
