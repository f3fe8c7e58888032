"""`POST /webhooks/twilio/status`: delivery callbacks move a reply's status forward only."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel
from db.dashboard_queries import sessions_page
from db.models import OutboundMessage, Turn
from db.outbox import mark_sent, record_reply
from db.sessions import get_or_create_session
from tests.factories import builder_with_channel, channel_at, fixture_form, post_signed

STATUS_FROM = fixture_form("status_delivered.txt")["From"]
"""The number the captured status callback reports on: the one that sent the reply."""


async def sent_reply(
    sessions: async_sessionmaker[AsyncSession],
    provider_message_id: str,
    *,
    provider: str = "twilio",
    address: str = STATUS_FROM,
) -> None:
    """A reply sent from the channel at `address` (made here unless the test made it),
    as its provider took it: `queued`."""
    async with sessions() as db:
        channel = await find_channel(provider, address, db=db)
    if channel is None:
        await builder_with_channel(sessions, provider=provider, address=address)
        channel = await channel_at(sessions, address, provider)
    async with sessions.begin() as db:
        session_id = await get_or_create_session(
            channel.builder_id, "whatsapp", "+31612345678", db=db
        )
        turn = Turn(id=uuid.uuid4(), session_id=session_id, status="replied", attempts=1)
        db.add(turn)
        await db.flush()
        [reply] = await record_reply(
            session_id=session_id,
            turn_id=turn.id,
            retry=0,
            channel_id=channel.id,
            recipient="whatsapp:+31612345678",
            parts=["Hello!"],
            db=db,
        )
        await mark_sent(reply.id, provider_message_id=provider_message_id, status="queued", db=db)


async def status_of(sessions: async_sessionmaker[AsyncSession]) -> tuple[str, str | None]:
    async with sessions() as db:
        reply = await db.scalar(select(OutboundMessage))
        assert reply is not None
        return reply.status, reply.error


async def post_status(receiver: str, form: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await post_signed(client, f"{receiver}/webhooks/twilio/status", form)


async def test_captured_delivered_callback_updates_the_reply(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    form = fixture_form("status_delivered.txt")
    await sent_reply(db_sessions, form["MessageSid"])
    response = await post_status(receiver, form)
    assert response.status_code == 200
    assert await status_of(db_sessions) == ("delivered", None)


async def test_a_late_sent_never_overwrites_read(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    form = fixture_form("status_delivered.txt")
    await sent_reply(db_sessions, form["MessageSid"])
    for status in ("read", "delivered", "sent"):
        assert (await post_status(receiver, {**form, "MessageStatus": status})).status_code == 200
    assert await status_of(db_sessions) == ("read", None)


async def test_failures_keep_twilio_error_code(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    form = fixture_form("status_delivered.txt")
    await sent_reply(db_sessions, form["MessageSid"])
    failed = {**form, "MessageStatus": "undelivered", "ErrorCode": "63016", "ErrorMessage": "x"}
    assert (await post_status(receiver, failed)).status_code == 200
    assert await status_of(db_sessions) == ("undelivered", "Twilio error 63016: x")


@pytest.mark.parametrize("status", ["undelivered", "failed"])
async def test_a_reply_not_delivered_makes_its_conversation_need_attention(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str, status: str
) -> None:
    """The callback notes the conversation: the "needs attention" list, which re-checks
    only noted conversations, shows it."""
    form = fixture_form("status_delivered.txt")
    await sent_reply(db_sessions, form["MessageSid"])
    async with db_sessions() as db:
        reply = await db.scalar(select(OutboundMessage))
        assert reply is not None
        channel = await find_channel("twilio", STATUS_FROM, db=db)
        assert channel is not None
        before = await sessions_page(channel.builder_id, show="attention", db=db)
    delivered = await post_status(receiver, form)
    not_delivered = await post_status(receiver, {**form, "MessageStatus": status})
    async with db_sessions() as db:
        after = await sessions_page(channel.builder_id, show="attention", db=db)
    assert (delivered.status_code, not_delivered.status_code) == (200, 200)
    assert before.sessions == []
    assert [(s.id, s.attention) for s in after.sessions] == [(reply.session_id, ("undelivered",))]


@pytest.mark.usefixtures("db_sessions")
async def test_unknown_messages_and_statuses_are_acknowledged(receiver: str) -> None:
    form = fixture_form("status_delivered.txt")
    assert (await post_status(receiver, form)).status_code == 200
    assert (await post_status(receiver, {**form, "MessageStatus": "warp"})).status_code == 200


async def test_a_callback_without_a_status_is_a_400(receiver: str) -> None:
    form = {k: v for k, v in fixture_form("status_delivered.txt").items() if k != "MessageStatus"}
    response = await post_status(receiver, form)
    assert response.status_code == 400 and "MessageStatus" in response.text


async def test_an_unsigned_callback_is_refused(receiver: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{receiver}/webhooks/twilio/status", data=fixture_form("status_delivered.txt")
        )
    assert response.status_code == 403
