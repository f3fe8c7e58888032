"""Which conversations need a person (`db.attention`), as one SQL condition and in words,
and what a provider's refusal means for a retry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.attention import needs_attention_condition, needs_attention_reasons, read_refusal
from db.models import (
    AgentSessionRow,
    InboundMessage,
    OutboundMessage,
    Turn,
)
from db.sessions import get_or_create_session
from tests.factories import arrive, builder_with_channel, channel_at


async def test_failed_turns_undelivered_replies_and_waiting_while_paused_need_attention(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    builder = await builder_with_channel(db_sessions)
    channel = await channel_at(db_sessions, "whatsapp:+14155238886")
    async with db_sessions.begin() as db:
        fine, failed, undelivered, paused, paused_quiet = [
            await get_or_create_session(builder, "whatsapp", f"+3161234000{n}", db=db)
            for n in range(5)
        ]
    waiting = await arrive(db_sessions, channel, "Anyone?")
    async with db_sessions.begin() as db:
        for minute, (session_id, status) in enumerate(
            [
                (fine, "failed"),
                (fine, "replied"),
                (failed, "replied"),
                (failed, "failed"),
                (undelivered, "replied"),
            ]
        ):
            started = datetime(2026, 12, 1, 12, minute, tzinfo=UTC)
            db.add(
                Turn(
                    id=uuid.uuid4(),
                    session_id=session_id,
                    status=status,
                    attempts=1,
                    created_at=started,
                )
            )
        await db.flush()
        answer = await db.scalar(select(Turn.id).where(Turn.session_id == undelivered))
        for part, status in enumerate(["delivered", "undelivered"]):
            db.add(
                OutboundMessage(
                    session_id=undelivered,
                    turn_id=answer,
                    part=part,
                    recipient="whatsapp:+31612340002",
                    text="…",
                    status=status,
                )
            )
        for session_id in (paused, paused_quiet):
            row = await db.get(AgentSessionRow, session_id)
            assert row is not None
            row.paused_at = datetime.now(UTC)
        message = await db.get(InboundMessage, waiting)
        assert message is not None
        message.session_id = paused

    async with db_sessions() as db:
        flagged = set(
            await db.scalars(select(AgentSessionRow.id).where(needs_attention_condition()))
        )
        reasons = {
            session_id: await needs_attention_reasons(session_id, db=db)
            for session_id in (fine, failed, undelivered, paused, paused_quiet)
        }
    assert flagged == {failed, undelivered, paused}
    assert reasons[fine] == []
    assert reasons[failed] == ["failed turn"]
    assert reasons[undelivered] == ["undelivered reply"]
    assert reasons[paused] == ["paused with waiting messages"]
    assert reasons[paused_quiet] == []


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
