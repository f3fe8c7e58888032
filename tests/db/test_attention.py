"""Which conversations need a person (`db.attention`): the inbox's filter and the reasons
a conversation page shows come from one rule and agree; and what a provider's refusal
means for a retry."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.attention import needs_attention, read_refusal
from db.dashboard_queries import session_with_status, sessions_page
from db.engine import create_engine, create_sessionmaker
from db.models import AgentSessionRow, InboundMessage, OutboundMessage, Turn
from db.sessions import get_or_create_session
from tests.db.kept_state import migration
from tests.factories import arrive, builder_with_channel, channel_at

NOW = datetime.now(UTC)


@pytest.fixture(params=["postgres", "sqlite"])
async def sessions(
    request: pytest.FixtureRequest,
    db_sessions: async_sessionmaker[AsyncSession],
    sqlite_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Postgres (emptied), or the embedded SQLite file (its triggers are its own)."""
    if request.param == "postgres":
        yield db_sessions
        return
    engine = create_engine(sqlite_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def test_the_inbox_filter_and_the_conversation_page_agree_on_what_needs_attention(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """One conversation per state, and some in several: the list's filter holds exactly
    those with a reason, and the list and the page (`session_with_status`, which the
    conversation header shows) give each the same reasons."""
    db_sessions = sessions
    address = f"whatsapp:+1415{uuid.uuid4().int % 10**7:07d}"  # SQLite's file is shared
    builder = await builder_with_channel(db_sessions, address=address)
    channel = await channel_at(db_sessions, address)
    names = [
        "fine",
        "failed",
        "failed then replied",
        "undelivered",
        "undelivered then retried",
        "undelivered before the latest turn",
        "paused waiting",
        "paused quiet",
        "closing",
        "closed",
        "closing and failed",
    ]
    async with db_sessions.begin() as db:
        ids = {
            name: await get_or_create_session(builder, "whatsapp", f"+3161234{n:04d}", db=db)
            for n, name in enumerate(names)
        }

    async def message(name: str, *, ago: timedelta, status: str) -> None:
        inbound = await arrive(db_sessions, channel, f"from {name}")
        async with db_sessions.begin() as db:
            row = await db.get(InboundMessage, inbound)
            assert row is not None
            row.session_id, row.received_at, row.status = ids[name], NOW - ago, status

    last_wrote = {"closing": 21, "closed": 25, "closing and failed": 23}
    for name in names:
        await message(name, ago=timedelta(hours=last_wrote.get(name, 1)), status="processed")
    await message("paused waiting", ago=timedelta(minutes=1), status="pending")
    await message("paused quiet", ago=timedelta(minutes=1), status="failed")

    async def turn(name: str, status: str, minute: int, parts: list[tuple[int, str]]) -> None:
        async with db_sessions.begin() as db:
            turn_id = uuid.uuid4()
            db.add(
                Turn(
                    id=turn_id,
                    session_id=ids[name],
                    status=status,
                    attempts=1,
                    created_at=NOW - timedelta(minutes=60 - minute),
                )
            )
            await db.flush()
            for part, (retry, part_status) in enumerate(parts):
                db.add(
                    OutboundMessage(
                        session_id=ids[name],
                        turn_id=turn_id,
                        retry=retry,
                        part=part,
                        recipient="whatsapp:+31612340000",
                        text="…",
                        status=part_status,
                    )
                )

    await turn("failed", "failed", 1, [])
    await turn("failed then replied", "failed", 1, [])
    await turn("failed then replied", "replied", 2, [(0, "delivered")])
    await turn("undelivered", "replied", 1, [(0, "delivered"), (0, "undelivered")])
    await turn("undelivered then retried", "replied", 1, [(0, "failed"), (1, "delivered")])
    await turn("undelivered before the latest turn", "replied", 1, [(0, "undelivered")])
    await turn("undelivered before the latest turn", "replied", 2, [(0, "read")])
    await turn("closing and failed", "failed", 1, [])
    async with db_sessions.begin() as db:
        for name in ("paused waiting", "paused quiet"):
            row = await db.get(AgentSessionRow, ids[name])
            assert row is not None
            row.paused_at = NOW

    async with db_sessions() as db:
        listed = (await sessions_page(builder, per_page=50, db=db)).sessions
        flagged = (await sessions_page(builder, show="attention", per_page=50, db=db)).sessions
        on_page = {name: await session_with_status(ids[name], db=db) for name in names}
    by_id = {session_id: name for name, session_id in ids.items()}
    in_list = {by_id[session.id]: session.attention for session in listed}
    shown = {name: session.attention for name, session in on_page.items() if session}
    expected = {
        "fine": (),
        "failed": ("failed turn",),
        "failed then replied": (),
        "undelivered": ("undelivered",),
        "undelivered then retried": (),
        "undelivered before the latest turn": (),
        "paused waiting": ("waiting",),
        "paused quiet": (),
        "closing": ("window closing",),
        "closed": (),
        "closing and failed": ("failed turn", "window closing"),
    }
    assert in_list == expected
    assert shown == expected
    assert {by_id[session.id] for session in flagged} == {
        name for name, reasons in expected.items() if reasons
    }
    assert await kept_facts_are_current(db_sessions)

    # The facts follow as things change: the waiting message is answered, the undelivered
    # part turns out delivered, the failed turn is retried and replies.
    async with db_sessions.begin() as db:
        await db.execute(
            update(InboundMessage)
            .where(InboundMessage.session_id == ids["paused waiting"])
            .values(status="processed")
        )
        await db.execute(
            update(OutboundMessage)
            .where(OutboundMessage.session_id == ids["undelivered"])
            .values(status="delivered")
        )
        await db.execute(
            update(Turn).where(Turn.session_id == ids["failed"]).values(status="replied")
        )
    async with db_sessions() as db:
        flagged = (await sessions_page(builder, show="attention", per_page=50, db=db)).sessions
    assert {by_id[session.id] for session in flagged} == {"closing", "closing and failed"}
    assert await kept_facts_are_current(db_sessions)


async def kept_facts_are_current(db_sessions: async_sessionmaker[AsyncSession]) -> bool:
    """The facts the triggers keep on each `sessions` row are what the migration's backfill
    computes from the turns, replies and messages (one definition of each)."""
    kept = [
        AgentSessionRow.latest_turn_status,
        AgentSessionRow.latest_reply_undelivered,
        AgentSessionRow.messages_waiting,
        AgentSessionRow.last_user_message_at,
    ]
    facts = (
        migration.latest_turn_status("sessions.id"),
        migration.latest_reply_undelivered("sessions.id"),
        migration.messages_waiting("sessions.id"),
        migration.last_user_message_at("sessions.id"),
    )
    computed = select(
        *kept,
        *(
            literal_column(f"({fact})", column.type)
            for fact, column in zip(facts, kept, strict=True)
        ),
    ).order_by(AgentSessionRow.id)
    async with db_sessions() as db:
        rows = (await db.execute(computed)).all()
    return bool(rows) and all(tuple(row[:4]) == tuple(row[4:]) for row in rows)


async def test_the_attention_filter_reads_only_the_flagged_conversations(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The filter's time-independent part is the partial index's predicate: the planner
    answers it from that index (and the closing window from its own), so the list costs
    the conversations flagged, not all of a builder's (here 5,000 that need nothing)."""
    builder = await builder_with_channel(db_sessions)
    filtered = select(AgentSessionRow.id).where(
        AgentSessionRow.builder_id == builder, needs_attention(NOW)
    )
    async with db_sessions.begin() as db:
        await db.execute(
            text(
                "INSERT INTO sessions (id, builder_id, platform, external_id)"
                " SELECT gen_random_uuid(), :builder, 'web', 'web-' || n"
                " FROM generate_series(1, 5000) AS n"
            ),
            {"builder": builder},
        )
    async with db_sessions.begin() as db:
        await db.execute(text("ANALYZE sessions"))
        compiled = filtered.compile(db.get_bind(), compile_kwargs={"literal_binds": True})
        plan = "\n".join(await db.scalars(text(f"EXPLAIN {compiled}")))
    assert "ix_sessions_needing_attention" in plan
    assert "ix_sessions_builder_id_last_user_message_at" in plan


def test_a_refusal_retrying_cannot_fix_says_so() -> None:
    outside = read_refusal("send failed: Twilio HTTP 400 (code 63016): Outside window")
    assert (outside.code, outside.text, outside.offer_template) == (
        "63016",
        "63016 Outside window",
        True,
    )
    assert outside.unfixable is not None and "24 hours" in outside.unfixable
    meta = read_refusal("Meta error 131047: Message failed to send")
    assert meta.offer_template and meta.code == "131047"
    recipient = read_refusal("Twilio error 63024:")
    assert recipient.text == "63024 Invalid message recipient"
    assert recipient.unfixable is not None and not recipient.offer_template
    assert read_refusal("Meta error 131026: Message undeliverable").unfixable is not None
    model = read_refusal("model API 400: fake failure")
    assert (model.code, model.text, model.unfixable) == (None, "model API 400: fake failure", None)
