"""The charts' activity per day, on Postgres and on the embedded SQLite: messages, turns,
failed turns and the median reply time (from the first message's arrival), of one
builder or of all of them; rolled up off the hot path, they read what the live queries
count, on either side of the watermark."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from functools import partial

import pytest
from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.activity import (
    CHART_DAYS,
    LONGEST_TURN,
    SETTLED_AFTER,
    DayActivity,
    daily_activity,
    roll_up_activity,
)
from db.builders import create_builder
from db.dashboard_queries import BuilderSummary, builders_overview
from db.models import (
    ActivityDay,
    ActivityRollup,
    AgentSessionRow,
    InboundMessage,
    InboundStatus,
    ReplyTime,
    SessionCount,
    SessionItem,
    Turn,
    TurnStatus,
)


@pytest.fixture
async def sessions(
    sessions: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    """Either database (`tests/conftest.py`) with nothing rolled up: tests store rows
    back-dated, which a watermark another test moved past in the shared SQLite file
    would hide."""
    if sessions.kw["bind"].dialect.name == "sqlite":
        async with sessions.begin() as db:
            await db.execute(delete(ActivityDay))
            await db.execute(delete(ReplyTime))
            await db.execute(delete(SessionCount))
            await db.execute(update(ActivityRollup).values(rolled_up_to=None))
    return sessions


def add_turn(
    db: AsyncSession,
    session_id: uuid.UUID,
    start: datetime,
    seconds: float | None,
    **fields: object,
) -> Turn:
    """A turn of the session made at `start`, replied `seconds` later (None: unfinished)."""
    made = Turn(
        id=uuid.uuid4(),
        session_id=session_id,
        status=fields.pop("status", TurnStatus.REPLIED),
        attempts=1,
        created_at=start,
        finished_at=None if seconds is None else start + timedelta(seconds=seconds),
        **fields,
    )
    db.add(made)
    return made


def message_item(session_id: uuid.UUID, sequence: int, role: str, at: datetime) -> SessionItem:
    """A message of `role` stored as the session's item `sequence` at `at`."""
    return SessionItem(
        session_id=session_id,
        item_data={"role": role, "content": "x"},
        sequence=sequence,
        created_at=at,
    )


def answered_message(turn: Turn, *, sender: str, received_at: datetime) -> InboundMessage:
    """The inbox message `turn` answered, arrived at `received_at`."""
    return InboundMessage(
        provider="twilio",
        provider_message_id=f"SM{uuid.uuid4().hex}",
        recipient="whatsapp:+14155550100",
        sender=sender,
        text="x",
        payload={},
        status=InboundStatus.PROCESSED,
        session_id=turn.session_id,
        turn_id=turn.id,
        received_at=received_at,
    )


async def busy_builder(sessions: async_sessionmaker[AsyncSession], *, noon: datetime) -> uuid.UUID:
    """A builder whose conversation had, today: three messages, four answered turns taking
    2, 4, 6 (5 s waiting in the inbox, then 1 s) and 10 seconds, a failed turn and a human
    reply; two days ago: one message and a turn answered in 3 s."""
    earlier = noon - timedelta(days=2)
    async with sessions.begin() as db:
        builder = await create_builder(name="Busy", instructions="I", model="m", db=db)
        session = AgentSessionRow(builder_id=builder.id, platform="whatsapp", external_id="+1")
        db.add(session)
        await db.flush()
        for sequence, (role, at) in enumerate(
            [("user", earlier), ("user", noon), ("assistant", noon), ("user", noon)]
        ):
            db.add(message_item(session.id, sequence, role, at))
        db.add(
            SessionItem(
                session_id=session.id,
                item_data={"type": "function_call", "name": "current_time"},
                sequence=9,
                created_at=noon,
            )
        )

        turn = partial(add_turn, db, session.id)

        turn(noon, 2)
        turn(noon, 10)
        turn(noon, 4)
        waited = turn(noon, 1)
        turn(noon, None, status=TurnStatus.FAILED, error="model API 500")
        turn(noon, 0.5, by_operator=True)
        turn(earlier, 3)
        await db.flush()
        db.add(
            answered_message(waited, sender="whatsapp:+1", received_at=noon - timedelta(seconds=5))
        )
        return builder.id


async def test_a_builder_s_days_with_their_median_reply_time(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    noon = datetime.combine(datetime.now(UTC).date(), time(12), tzinfo=UTC)
    if datetime.now(UTC) < noon:
        noon -= timedelta(hours=12)  # still today, and not in the future
    builder = await busy_builder(sessions, noon=noon)
    async with sessions() as db:
        other = await create_builder(name="Quiet", instructions="I", model="m", db=db)
        await db.commit()
        days = await daily_activity(builder, db=db)
        quiet = await daily_activity(other.id, db=db)
        everyone = await daily_activity(None, db=db)

    assert len(days) == CHART_DAYS
    assert days[-1].day == noon.date()
    today, two_days_ago = days[-1], days[-3]
    assert (today.messages, today.turns, today.failures) == (3, 5, 1)
    # SQLite counts in Julian days: a few microseconds off.
    assert today.median_reply_seconds == pytest.approx(5.0, abs=0.001)
    assert (two_days_ago.messages, two_days_ago.turns, two_days_ago.failures) == (1, 1, 0)
    assert two_days_ago.median_reply_seconds == pytest.approx(3.0, abs=0.001)
    assert all(
        (day.messages, day.turns, day.median_reply_seconds) == (0, 0, None)
        for day in days
        if day not in (today, two_days_ago)
    )
    assert all((day.messages, day.turns) == (0, 0) for day in quiet)
    assert everyone[-1].turns >= today.turns and everyone[-1].messages >= today.messages


def hour_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def minute_start(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


async def builder_around(
    sessions: async_sessionmaker[AsyncSession], *, watermark: datetime
) -> uuid.UUID:
    """A builder with two sessions (one made before `watermark`, one after), and
    messages and turns on either side of it (a day before it too): turns replied,
    failed, retried, an operator's failed and sent replies, a turn answering a message
    that waited, and one made before the watermark but replied after it."""
    before, after, day_before = (
        watermark - timedelta(minutes=30),
        watermark + timedelta(minutes=30),
        watermark - timedelta(hours=26),
    )
    async with sessions.begin() as db:
        builder = await create_builder(name="Around", instructions="I", model="m", db=db)
        session = AgentSessionRow(
            builder_id=builder.id,
            platform="whatsapp",
            external_id="+2",
            created_at=day_before,
            updated_at=after,
        )
        db.add(session)
        db.add(AgentSessionRow(builder_id=builder.id, platform="whatsapp", external_id="+3"))
        await db.flush()
        for sequence, (role, at) in enumerate(
            [
                ("user", day_before),
                ("assistant", day_before),
                ("user", before),
                ("assistant", before),
                ("tool", before),
                ("user", after),
                ("assistant", after),
                ("user", after),
            ]
        ):
            db.add(message_item(session.id, sequence, role, at))

        turn = partial(add_turn, db, session.id)

        turn(day_before, 1.5)
        turn(day_before, None, status=TurnStatus.FAILED, error="model API 500")
        turn(before, 2.04)
        turn(before, None, status=TurnStatus.RETRIED, error="model API 500")
        turn(before, None, status=TurnStatus.FAILED, error="refused", by_operator=True)
        turn(before, 0.5, by_operator=True)
        turn(watermark - timedelta(minutes=5), 15 * 60)  # replied after the watermark
        waited = turn(after, 1)
        turn(after, 4)
        turn(after, None, status=TurnStatus.FAILED, error="model API 500")
        turn(after, None, status=TurnStatus.FAILED, error="refused", by_operator=True)
        await db.flush()
        db.add(
            answered_message(waited, sender="whatsapp:+2", received_at=after - timedelta(seconds=7))
        )
        return builder.id


async def what_pages_read(
    sessions: async_sessionmaker[AsyncSession], builder: uuid.UUID
) -> tuple[list[DayActivity], list[DayActivity], list[BuilderSummary]]:
    """The builder's chart, everyone's, and the builder's row of the builders page."""
    async with sessions() as db:
        overview = [row for row in await builders_overview(db=db) if row.id == builder]
        return (
            await daily_activity(builder, db=db),
            await daily_activity(None, db=db),
            overview,
        )


async def roll_up(sessions: async_sessionmaker[AsyncSession], now: datetime) -> datetime:
    async with sessions.begin() as db:
        return await roll_up_activity(db=db, now=now)


async def kept_rows(
    sessions: async_sessionmaker[AsyncSession], builder: uuid.UUID
) -> tuple[list[Row[date, int, int, int, int]], list[Row[date, int, int]]]:
    """Its rolled-up rows: per day, and the reply times of each day."""
    async with sessions() as db:
        days = await db.execute(
            select(
                ActivityDay.day,
                ActivityDay.messages,
                ActivityDay.turns,
                ActivityDay.failures,
                ActivityDay.operator_failures,
            )
            .where(ActivityDay.builder_id == builder)
            .order_by(ActivityDay.day)
        )
        times = await db.execute(
            select(ReplyTime.day, ReplyTime.tenths, ReplyTime.turns)
            .where(ReplyTime.builder_id == builder)
            .order_by(ReplyTime.day, ReplyTime.tenths)
        )
        return list(days), list(times)


async def test_rolled_up_days_read_what_the_live_queries_count(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    watermark = hour_start(datetime.now(UTC)) - timedelta(hours=2)
    builder = await builder_around(sessions, watermark=watermark)
    live = await what_pages_read(sessions, builder)
    days, _, [overview] = live
    on = {day.day: day for day in days}
    before = on[(watermark - timedelta(minutes=30)).date()]
    if before.day == (watermark + timedelta(minutes=30)).date():
        assert (before.messages, before.turns, before.failures) == (5, 6, 2)
        assert before.median_reply_seconds == pytest.approx(6.0)  # 2, 4, 8 (waited) and 900 s
    else:
        assert (before.messages, before.turns, before.failures) == (2, 3, 1)
        assert before.median_reply_seconds == pytest.approx(451.0)  # 2 and 900 s
    day_before = on[(watermark - timedelta(hours=26)).date()]
    assert (day_before.messages, day_before.turns, day_before.failures) == (2, 2, 1)
    assert day_before.median_reply_seconds == pytest.approx(1.5)

    assert await roll_up(sessions, watermark + SETTLED_AFTER) == watermark
    assert await what_pages_read(sessions, builder) == live
    kept = await kept_rows(sessions, builder)
    assert kept[0], "what was made before the watermark is rolled up"

    assert await roll_up(sessions, watermark + SETTLED_AFTER + timedelta(seconds=59)) == watermark
    assert await kept_rows(sessions, builder) == kept, "a row is rolled up once"

    now = datetime.now(UTC)
    assert await roll_up(sessions, now) == minute_start(now - SETTLED_AFTER)
    assert await what_pages_read(sessions, builder) == live
    today = days[-1]
    operators_failed = sum(
        1
        for at in (watermark - timedelta(minutes=30), watermark + timedelta(minutes=30))
        if at.date() == today.day
    )
    assert overview.sessions == 2
    assert overview.messages_today == today.messages
    assert overview.failures_today == today.failures + operators_failed


async def test_the_first_roll_up_starts_where_the_charts_do(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    builder = await builder_around(sessions, watermark=hour_start(now) - timedelta(hours=2))
    async with sessions.begin() as db:
        await db.execute(delete(ActivityRollup))  # as a database emptied by hand
    live = await what_pages_read(sessions, builder)
    assert await roll_up(sessions, now) == minute_start(now - SETTLED_AFTER)
    assert await what_pages_read(sessions, builder) == live
    days, _ = await kept_rows(sessions, builder)
    first_shown = now.date() - timedelta(days=CHART_DAYS - 1)
    assert all(day >= first_shown for day, *_ in days)


async def test_a_running_turn_holds_the_roll_up_back_until_it_ends(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    started = now - timedelta(minutes=10, seconds=30)
    async with sessions.begin() as db:
        builder = await create_builder(name="Running", instructions="I", model="m", db=db)
        session = AgentSessionRow(builder_id=builder.id, platform="whatsapp", external_id="+4")
        db.add(session)
        await db.flush()
        running = Turn(
            id=uuid.uuid4(),
            session_id=session.id,
            status=TurnStatus.RUNNING,
            attempts=1,
            created_at=started,
        )
        db.add(running)
    assert await roll_up(sessions, now) == minute_start(started)

    async with sessions.begin() as db:
        await db.execute(
            update(Turn)
            .where(Turn.id == running.id)
            .values(status=TurnStatus.REPLIED, finished_at=started + timedelta(seconds=42))
        )
    live = await what_pages_read(sessions, builder.id)
    assert await roll_up(sessions, now) == minute_start(now - SETTLED_AFTER)
    assert await what_pages_read(sessions, builder.id) == live
    assert live[0][-1].median_reply_seconds == pytest.approx(42.0)


async def test_a_turn_running_too_long_is_rolled_up_as_it_stands(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    async with sessions.begin() as db:
        builder = await create_builder(name="Stuck", instructions="I", model="m", db=db)
        session = AgentSessionRow(builder_id=builder.id, platform="whatsapp", external_id="+5")
        db.add(session)
        await db.flush()
        db.add(
            Turn(
                session_id=session.id,
                status=TurnStatus.RUNNING,
                attempts=1,
                created_at=now - LONGEST_TURN - timedelta(minutes=1),
            )
        )
    live = await what_pages_read(sessions, builder.id)
    assert await roll_up(sessions, now) == minute_start(now - SETTLED_AFTER)
    assert await what_pages_read(sessions, builder.id) == live
    assert (live[0][-1].turns, live[0][-1].failures) == (1, 0)
