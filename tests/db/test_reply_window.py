"""The 24-hour window: open for 24 hours after the user's latest WhatsApp message, none
for a conversation no number routes (a web chat)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Channel, InboundMessage, InboundStatus
from db.reply_window import reply_window
from tests.factories import USER_NUMBER, builder_with_channel, stored_session


async def received(
    sessions: async_sessionmaker[AsyncSession],
    session_id: uuid.UUID,
    channel_id: uuid.UUID | None,
    at: datetime,
) -> None:
    async with sessions.begin() as db:
        db.add(
            InboundMessage(
                provider="twilio",
                provider_message_id=f"SM{uuid.uuid4().hex}",
                channel_id=channel_id,
                recipient="whatsapp:+14155238886",
                sender=USER_NUMBER,
                text="Hi",
                media=[],
                payload={},
                status=InboundStatus.PROCESSED,
                session_id=session_id,
                received_at=at,
            )
        )


async def test_the_window_runs_24_hours_from_the_latest_message(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    builder = await builder_with_channel(db_sessions)
    session = await stored_session(db_sessions, builder, [])
    async with db_sessions() as db:
        channel = await db.scalar(select(Channel.id))
    now = datetime.now(UTC)
    await received(db_sessions, session, channel, now - timedelta(hours=30))
    await received(db_sessions, session, channel, now - timedelta(hours=25))

    async with db_sessions() as db:
        closed = await reply_window(session, db=db)
    assert closed is not None and not closed.is_open()
    assert closed.closes_at == closed.last_message_at + timedelta(hours=24)
    assert closed.left() == timedelta(0)

    await received(db_sessions, session, channel, now - timedelta(hours=3))
    async with db_sessions() as db:
        reopened = await reply_window(session, db=db)
    assert reopened is not None and reopened.is_open()
    assert timedelta(hours=20, minutes=59) < reopened.left() <= timedelta(hours=21)


async def test_a_conversation_no_number_routes_has_no_window(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    builder = await builder_with_channel(db_sessions)
    web = await stored_session(db_sessions, builder, [], platform="web", external_id="web-1")
    removed = await stored_session(db_sessions, builder, [], external_id="+31600000000")
    await received(db_sessions, removed, None, datetime.now(UTC))  # its number was removed
    async with db_sessions() as db:
        assert await reply_window(web, db=db) is None
        assert await reply_window(removed, db=db) is None
