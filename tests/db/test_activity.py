"""The charts' activity per day, on Postgres and on the embedded SQLite: messages, turns,
failed turns and the median reply time (from the first message's arrival), of one
builder or of all of them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.activity import CHART_DAYS, daily_activity
from db.builders import create_builder
from db.engine import create_engine, create_sessionmaker
from db.models import (
    AgentSessionRow,
    InboundMessage,
    InboundStatus,
    SessionItem,
    Turn,
    TurnStatus,
)


@pytest.fixture(params=["postgres", "sqlite"])
async def sessions(
    request: pytest.FixtureRequest,
    db_sessions: async_sessionmaker[AsyncSession],
    sqlite_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Postgres (emptied), or the embedded SQLite file (each test makes its own builders)."""
    if request.param == "postgres":
        yield db_sessions
        return
    engine = create_engine(sqlite_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


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
            db.add(
                SessionItem(
                    session_id=session.id,
                    item_data={"role": role, "content": "x"},
                    sequence=sequence,
                    created_at=at,
                )
            )
        db.add(
            SessionItem(
                session_id=session.id,
                item_data={"type": "function_call", "name": "current_time"},
                sequence=9,
                created_at=noon,
            )
        )

        def turn(start: datetime, seconds: float | None, **fields: object) -> Turn:
            finished = None if seconds is None else start + timedelta(seconds=seconds)
            made = Turn(
                id=uuid.uuid4(),
                session_id=session.id,
                status=fields.pop("status", TurnStatus.REPLIED),
                attempts=1,
                created_at=start,
                finished_at=finished,
                **fields,
            )
            db.add(made)
            return made

        turn(noon, 2)
        turn(noon, 10)
        turn(noon, 4)
        waited = turn(noon, 1)
        turn(noon, None, status=TurnStatus.FAILED, error="model API 500")
        turn(noon, 0.5, by_operator=True)
        turn(earlier, 3)
        await db.flush()
        db.add(
            InboundMessage(
                provider="twilio",
                provider_message_id=f"SM{uuid.uuid4().hex}",
                recipient="whatsapp:+14155550100",
                sender="whatsapp:+1",
                text="x",
                payload={},
                status=InboundStatus.PROCESSED,
                session_id=session.id,
                turn_id=waited.id,
                received_at=noon - timedelta(seconds=5),
            )
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
