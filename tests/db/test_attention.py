"""Which conversations need a person (`db.attention`): the inbox's filter and the reasons
a conversation page shows come from one rule and agree; and what a provider's refusal
means for a retry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.attention import NOT_DELIVERED, note_attention, read_refusal
from db.dashboard_queries import session_with_status, sessions_page
from db.models import AgentSessionRow, InboundMessage, OutboundMessage, Turn
from db.sessions import get_or_create_session
from tests.factories import arrive, builder_with_channel, channel_at

NOW = datetime.now(UTC)


async def test_the_inbox_filter_and_the_conversation_page_agree_on_what_needs_attention(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """One conversation per state, and some in several: the list's filter holds exactly
    those with a reason, and the list and the page (`session_with_status`, which the
    conversation header shows) give each the same reasons."""
    builder = await builder_with_channel(db_sessions)
    channel = await channel_at(db_sessions, "whatsapp:+14155238886")
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
            await db.flush()
            if status == "failed" or any(noted in NOT_DELIVERED for _, noted in parts):
                await note_attention(ids[name], db=db)  # as the worker and receiver do

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
