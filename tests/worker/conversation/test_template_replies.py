"""Outside the 24-hour window a human's free-form reply is refused before anything is
stored or sent, and an approved template goes instead: through the one send path, its
exact request at the fake provider, its filled body in the session."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import (
    AgentSessionRow,
    Channel,
    InboundMessage,
    MessageTemplate,
    OutboundMessage,
    Turn,
)
from db.reply_window import CLOSED_REASON
from db.templates import TemplateRow, fill_template, store_templates, templates_of
from tests.factories import META_USER_WA_ID, USER_NUMBER, arrive
from tests.fakes.meta import WINDOW_CLOSED_DETAILS, FakeGraphAPI
from tests.fakes.twilio import WINDOW_CLOSED, FakeTwilio
from tests.queries import all_items
from worker.conversation.delivery import SEND_ATTEMPTS
from worker.conversation.human_reply import (
    ReplyRefused,
    reply_as_human,
    send_template_as_human,
)
from worker.conversation.inbound import process_inbound
from worker.conversation.lease import conversation_lease
from worker.conversation.replies import send_unsent
from worker.process.runtime import Runtime

CONTENT_SID = "HX" + "b" * 32
ORDER_READY = "Hi {{1}}, your order {{2}} is ready for pickup."


async def answered_once(
    sessions: async_sessionmaker[AsyncSession], channel: Channel, runtime: Runtime
) -> uuid.UUID:
    """A conversation the bot has answered once."""
    await process_inbound(await arrive(sessions, channel, "Hi"), runtime=runtime)
    async with sessions() as db:
        session_id = await db.scalar(select(AgentSessionRow.id))
    assert session_id is not None
    return session_id


async def age(sessions: async_sessionmaker[AsyncSession], hours: float) -> None:
    """The user's messages arrived `hours` ago."""
    async with sessions.begin() as db:
        await db.execute(
            update(InboundMessage).values(received_at=datetime.now(UTC) - timedelta(hours=hours))
        )


async def stored_template(
    sessions: async_sessionmaker[AsyncSession], channel: Channel, row: TemplateRow
) -> MessageTemplate:
    async with sessions.begin() as db:
        await store_templates(channel.builder_id, channel.provider, [row], db=db)
    async with sessions() as db:
        [template] = await templates_of(channel.builder_id, db=db)
    return template


async def twilio_template(
    sessions: async_sessionmaker[AsyncSession], channel: Channel, fake_twilio: FakeTwilio
) -> MessageTemplate:
    """ORDER_READY as a Content template the account has, stored for the builder."""
    fake_twilio.contents[CONTENT_SID] = ORDER_READY
    row = TemplateRow("order_ready", "en", "APPROVED", ORDER_READY, content_sid=CONTENT_SID)
    return await stored_template(sessions, channel, row)


async def test_a_free_form_reply_after_24_hours_is_refused_before_anything_happens(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    session_id = await answered_once(db_sessions, channel, runtime)
    await age(db_sessions, 25)
    before = await all_items(db_sessions)

    with pytest.raises(ReplyRefused, match="24-hour window is closed") as refused:
        await reply_as_human(session_id, "Sam here, still there?", runtime=runtime)

    assert str(refused.value) == CLOSED_REASON
    assert await all_items(db_sessions) == before
    assert len(fake_twilio.messages) == 1  # the bot's answer only
    async with db_sessions() as db:
        assert await db.scalar(select(Turn).where(Turn.by_operator)) is None


async def test_a_twilio_template_goes_by_content_sid_and_the_session_keeps_what_was_read(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    session_id = await answered_once(db_sessions, channel, runtime)
    await age(db_sessions, 25)
    fake_twilio.closed_windows.add(USER_NUMBER)
    template = await twilio_template(db_sessions, channel, fake_twilio)

    [part] = await send_template_as_human(
        session_id, fill_template(template, ["Ada", "#42"]), runtime=runtime
    )

    sent = fake_twilio.messages[-1]
    assert {key: sent[key] for key in ("From", "To", "ContentSid", "ContentVariables")} == {
        "From": channel.address,
        "To": USER_NUMBER,
        "ContentSid": CONTENT_SID,
        "ContentVariables": json.dumps({"1": "Ada", "2": "#42"}),
    }
    assert "Body" not in sent
    shown = "Hi Ada, your order #42 is ready for pickup."
    assert sent["rendered_body"] == shown
    assert (part.status, part.text, part.provider_message_id) == ("queued", shown, sent["sid"])
    assert part.template is not None and part.template["content_sid"] == CONTENT_SID
    assert (await all_items(db_sessions))[-1] == {"role": "assistant", "content": shown}


async def test_a_meta_template_is_a_template_message_by_name_language_and_parameters(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_graph: FakeGraphAPI,
) -> None:
    session_id = await answered_once(db_sessions, meta_channel, runtime)
    await age(db_sessions, 25)
    fake_graph.closed_windows.add(META_USER_WA_ID)
    fake_graph.templates.append(
        {
            "name": "order_ready",
            "language": "en_US",
            "status": "APPROVED",
            "components": [{"type": "BODY", "text": ORDER_READY}],
        }
    )
    template = await stored_template(
        db_sessions, meta_channel, TemplateRow("order_ready", "en_US", "APPROVED", ORDER_READY)
    )

    [part] = await send_template_as_human(
        session_id, fill_template(template, ["Ada", "#42"]), runtime=runtime
    )

    sent = fake_graph.messages[-1]
    assert {key: value for key, value in sent.items() if key not in ("id", "access_token")} == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": META_USER_WA_ID,
        "type": "template",
        "template": {
            "name": "order_ready",
            "language": {"code": "en_US"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Ada"},
                        {"type": "text", "text": "#42"},
                    ],
                }
            ],
        },
        "biz_opaque_callback_data": str(part.id),
        "phone_number_id": meta_channel.address,
    }
    assert (part.status, part.provider_message_id) == ("sent", sent["id"])
    shown = "Hi Ada, your order #42 is ready for pickup."
    assert (await all_items(db_sessions))[-1] == {"role": "assistant", "content": shown}


async def test_a_free_form_send_meta_refuses_for_the_window_shows_meta_s_reason(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_graph: FakeGraphAPI,
) -> None:
    """Our clock and Meta's may disagree at the edge: Meta's 131047 is the reason shown."""
    session_id = await answered_once(db_sessions, meta_channel, runtime)
    fake_graph.closed_windows.add(META_USER_WA_ID)

    [part] = await reply_as_human(session_id, "Sam here.", runtime=runtime)

    assert part.status == "failed"
    assert part.error == f"send failed: Meta HTTP 400 (code 131047): {WINDOW_CLOSED_DETAILS}"


async def test_a_free_form_send_twilio_refuses_for_the_window_shows_twilio_s_code(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    session_id = await answered_once(db_sessions, channel, runtime)
    fake_twilio.closed_windows.add(USER_NUMBER)

    [part] = await reply_as_human(session_id, "Sam here.", runtime=runtime)

    assert part.status == "failed"
    assert part.error == (
        f"send failed: Twilio HTTP 400 (code 63016): Unable to create record: {WINDOW_CLOSED}"
    )


async def test_a_template_part_sent_again_is_the_same_template(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    """The outbox records the template: a part refused for now and sent later (a resumed
    turn) sends that template with those variables, not its text."""
    session_id = await answered_once(db_sessions, channel, runtime)
    template = await twilio_template(db_sessions, channel, fake_twilio)
    fake_twilio.failures.extend([(503, 20500)] * SEND_ATTEMPTS)
    [failed] = await send_template_as_human(
        session_id, fill_template(template, ["Ada", "#42"]), runtime=runtime
    )
    assert failed.status == "failed" and len(fake_twilio.messages) == 1
    async with db_sessions.begin() as db:
        await db.execute(
            update(OutboundMessage).where(OutboundMessage.id == failed.id).values(status="pending")
        )
        pending = await db.get(OutboundMessage, failed.id)
        assert pending is not None

    async with conversation_lease(session_id, runtime=runtime) as lease:
        await send_unsent([pending], channel=channel, lease=lease, runtime=runtime)

    resent = fake_twilio.messages[-1]
    assert (resent["ContentSid"], resent["ContentVariables"]) == (
        CONTENT_SID,
        json.dumps({"1": "Ada", "2": "#42"}),
    )
    assert len(fake_twilio.messages) == 2


async def test_a_template_for_another_provider_is_refused(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
) -> None:
    session_id = await answered_once(db_sessions, channel, runtime)
    template = await stored_template(
        db_sessions, channel, TemplateRow("order_ready", "en", "APPROVED", ORDER_READY)
    )
    meta_one = replace(fill_template(template, ["Ada", "#42"]), provider="meta")

    with pytest.raises(ReplyRefused, match="is a meta template; this conversation is on twilio"):
        await send_template_as_human(session_id, meta_one, runtime=runtime)


async def test_a_template_part_its_worker_died_sending_is_found_not_sent_twice(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    """Twilio took the template, then the worker died before recording it: the resumed
    send finds it in Twilio's Messages list (by the body Twilio made of it)."""
    session_id = await answered_once(db_sessions, channel, runtime)
    template = await twilio_template(db_sessions, channel, fake_twilio)
    [sent] = await send_template_as_human(
        session_id, fill_template(template, ["Ada", "#42"]), runtime=runtime
    )
    async with db_sessions.begin() as db:
        await db.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == sent.id)
            .values(status="sending", provider_message_id=None)
        )
        dying = await db.get(OutboundMessage, sent.id)
        assert dying is not None

    async with conversation_lease(session_id, runtime=runtime) as lease:
        await send_unsent([dying], channel=channel, lease=lease, runtime=runtime)

    assert len(fake_twilio.messages) == 2  # the bot's answer and the template, once
    async with db_sessions() as db:
        found = await db.get(OutboundMessage, sent.id)
    assert found is not None
    assert found.provider_message_id == fake_twilio.messages[-1]["sid"]
