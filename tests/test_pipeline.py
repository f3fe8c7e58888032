"""The whole pipeline for real: signed webhooks over HTTP to our receiver, Redis, a
Celery worker process, the SDK runner with our `DatabaseSession` on Postgres, the SDK's
OpenAI model against a fake Responses API, and twilio's `Client` against a fake Twilio."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.channel_credentials import MetaCredentials, TwilioCredentials
from db.transcript import content_text
from tests.factories import (
    BOT_NUMBER,
    META_PHONE_NUMBER_ID,
    META_USER_WA_ID,
    USER_NUMBER,
    builder_with_channel,
    meta_notification,
    meta_text_message,
    post_meta,
    post_signed,
    twilio_form,
)
from tests.fakes.meta import OTHER_ACCESS_TOKEN, OTHER_APP_SECRET, FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN, FakeTwilio
from tests.queries import all_answered, all_items, inbound_messages, kind, outbound_messages, turns
from tests.waiting import at_least, eventually


@pytest.fixture(autouse=True)
async def worker_settles(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """After each test, wait until the worker has closed every turn and released every
    lease, so the next test's fresh tables are not pulled from under a running turn."""
    yield
    await eventually(partial(all_answered, db_sessions), what="the worker to finish its turns")


async def test_tool_calls_and_history_survive_between_turns(
    celery_worker: Path,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    await builder_with_channel(db_sessions)
    async with httpx.AsyncClient() as client:
        first = await post_signed(
            client, f"{live_receiver}/webhooks/twilio", twilio_form("What time is it?")
        )
        assert first.status_code == 200
        await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")
        second = await post_signed(
            client, f"{live_receiver}/webhooks/twilio", twilio_form("Thanks!")
        )
        assert second.status_code == 200
        sent = await at_least(fake_twilio.messages, 2, what="replies at the fake Twilio")
    await eventually(partial(all_answered, db_sessions), what="both turns closed")

    items = await all_items(db_sessions)
    assert [kind(item) for item in items] == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
        "user",
        "assistant",
    ]
    assert items[1]["call_id"] == items[2]["call_id"]
    tool_output = items[2]["output"]
    assert [(m["From"], m["To"]) for m in sent] == [(BOT_NUMBER, USER_NUMBER)] * 2
    assert [m["Body"] for m in sent] == [f"The time is {tool_output}.", "You said: Thanks!"]

    # The runner, not our code, gave the model its history: the third model call (second
    # message) sees the first turn's tool call and result, loaded from session_items.
    third_call_input = fake_openai.requests[2]["input"]
    assert [kind(item) for item in third_call_input] == [kind(item) for item in items[:5]]
    assert content_text(third_call_input[-1]["content"]) == "Thanks!"

    outbound = await outbound_messages(db_sessions)
    assert [reply.provider_message_id for reply in outbound] == [m["sid"] for m in sent]
    assert {message.status for message in await inbound_messages(db_sessions)} == {"processed"}
    worker_log = await asyncio.to_thread(celery_worker.read_text)
    assert "whatsapp:+316•••••678" in worker_log and "31612345678" not in worker_log


async def test_a_message_delivered_three_times_is_answered_once(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    await builder_with_channel(db_sessions)
    form = twilio_form("Hello there")
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            assert (
                await post_signed(client, f"{live_receiver}/webhooks/twilio", form)
            ).status_code == 200
    await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")
    await asyncio.sleep(1.0)  # give a duplicate every chance to show up
    assert len(fake_twilio.messages) == 1
    assert len(fake_openai.requests) == 1
    assert [kind(item) for item in await all_items(db_sessions)] == ["user", "assistant"]
    assert len(await turns(db_sessions)) == 1


async def test_messages_sent_at_once_are_answered_in_order_never_interleaved(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    await builder_with_channel(db_sessions)
    fake_openai.delay_seconds = 0.3
    texts = [f"message {n}" for n in range(4)]
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(
                post_signed(client, f"{live_receiver}/webhooks/twilio", twilio_form(t))
                for t in texts
            )
        )
    assert [response.status_code for response in responses] == [200] * 4

    async def all_answered() -> bool:
        inbox = await inbound_messages(db_sessions)
        return len(inbox) == 4 and all(message.status == "processed" for message in inbox)

    await eventually(all_answered, what="all four messages answered")
    arrival_order = [message.text for message in await inbound_messages(db_sessions)]
    items = await all_items(db_sessions)
    stored_order = [content_text(item["content"]) for item in items if kind(item) == "user"]
    assert stored_order == arrival_order
    # Each turn is one or more user messages (a burst is answered together) then the reply.
    shape = "".join({"user": "U", "assistant": "A"}[kind(item)] for item in items)
    assert re.fullmatch(r"(U+A)+", shape), shape
    assert len(fake_twilio.messages) == shape.count("A") == len(await turns(db_sessions))


async def test_a_meta_conversation_end_to_end(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    location = {
        "id": "wamid.LOCATION1",
        "from": META_USER_WA_ID,
        "type": "location",
        "location": {"latitude": 52.37, "longitude": 4.89, "name": "Dam Square"},
    }
    async with httpx.AsyncClient() as client:
        url = f"{live_receiver}/webhooks/meta"
        first = meta_notification([meta_text_message("What time is it?", wamid="wamid.TIME1")])
        assert (await post_meta(client, url, first)).status_code == 200
        await at_least(fake_graph.messages, 1, what="replies at the fake Graph API")
        assert (await post_meta(client, url, meta_notification([location]))).status_code == 200
        sent = await at_least(fake_graph.messages, 2, what="replies at the fake Graph API")
        await eventually(partial(all_answered, db_sessions), what="both turns closed")

        items = await all_items(db_sessions)
        assert [kind(item) for item in items] == [
            "user",
            "function_call",
            "function_call_output",
            "assistant",
            "user",
            "assistant",
        ]
        assert items[4]["content"] == "[location: 52.37, 4.89, Dam Square]"
        assert [m["to"] for m in sent] == [META_USER_WA_ID] * 2
        assert sent[1]["text"]["body"] == "You said: [location: 52.37, 4.89, Dam Square]"
        assert [t["message_id"] for t in fake_graph.typing] == ["wamid.TIME1", "wamid.LOCATION1"]

        for status in ("delivered", "sent", "read"):
            update = {"id": sent[0]["id"], "status": status, "timestamp": "1", "recipient_id": "1"}
            body = meta_notification(statuses=[update])
            assert (await post_meta(client, url, body)).status_code == 200
    replies = await outbound_messages(db_sessions)
    assert [(r.provider_message_id, r.status) for r in replies] == [
        (sent[0]["id"], "read"),
        (sent[1]["id"], "sent"),
    ]


async def test_logs_never_hold_secrets_numbers_or_message_bodies(
    celery_worker: Path,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
    service_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await builder_with_channel(db_sessions)
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    body = "my secret recipe is 3 eggs"
    with caplog.at_level(logging.INFO):
        async with httpx.AsyncClient() as client:
            await post_signed(client, f"{live_receiver}/webhooks/twilio", twilio_form(body))
            await post_meta(
                client,
                f"{live_receiver}/webhooks/meta",
                meta_notification([meta_text_message(body)]),
            )
        await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")
        await at_least(fake_graph.messages, 1, what="replies at the fake Graph API")
    logs = caplog.text + await asyncio.to_thread(celery_worker.read_text)
    secrets = [
        service_env[name]
        for name in (
            "TWILIO_AUTH_TOKEN",
            "META_APP_SECRET",
            "META_ACCESS_TOKEN",
            "OPENAI_API_KEY",
            "CREDENTIALS_KEY",
        )
    ]
    forbidden = [*secrets, "31612345678", META_USER_WA_ID, body, "recipe"]
    assert [leak for leak in forbidden if leak in logs] == []
    assert "+316•••••678" in logs


async def test_numbers_with_their_own_credentials_are_answered_under_them(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
) -> None:
    """A number of another Twilio account, and one of another Meta app: each webhook is
    verified with that number's own secret, each reply sent with its own credentials."""
    await builder_with_channel(
        db_sessions, credentials=TwilioCredentials(OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN)
    )
    await builder_with_channel(
        db_sessions,
        provider="meta",
        address=META_PHONE_NUMBER_ID,
        credentials=MetaCredentials(access_token=OTHER_ACCESS_TOKEN, app_secret=OTHER_APP_SECRET),
    )
    async with httpx.AsyncClient() as client:
        twilio = await post_signed(
            client,
            f"{live_receiver}/webhooks/twilio",
            twilio_form("Twilio here"),
            token=OTHER_AUTH_TOKEN,
        )
        meta = await post_meta(
            client,
            f"{live_receiver}/webhooks/meta",
            meta_notification([meta_text_message("Meta here")]),
            secret=OTHER_APP_SECRET,
        )
        assert (twilio.status_code, meta.status_code) == (200, 200)
        [twilio_reply] = await at_least(fake_twilio.messages, 1, what="the Twilio reply")
        [meta_reply] = await at_least(fake_graph.messages, 1, what="the Meta reply")
    assert (twilio_reply["Body"], twilio_reply["account_sid"]) == (
        "You said: Twilio here",
        OTHER_ACCOUNT_SID,
    )
    assert (meta_reply["text"]["body"], meta_reply["access_token"]) == (
        "You said: Meta here",
        OTHER_ACCESS_TOKEN,
    )
