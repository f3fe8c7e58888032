"""The whole pipeline for real: signed webhooks over HTTP to our receiver, Redis (or
RabbitMQ), a Celery worker process, the SDK runner with our `DatabaseSession` on Postgres
(through PgBouncer), the SDK's OpenAI model against a fake Responses API, and twilio's
`Client` against a fake Twilio."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.core.credentials import MetaCredentials, TwilioCredentials
from db.transcript import content_text
from tests.conftest import start_worker
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
from tests.fakes.server import free_port
from tests.fakes.twilio import OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN, FakeTwilio
from tests.logs import json_lines
from tests.queries import all_answered, all_items, inbound_messages, kind, outbound_messages, turns
from tests.services import RABBITMQ_URL
from tests.waiting import at_least, eventually

ROOT = Path(__file__).resolve().parents[2]


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


async def test_on_rabbitmq_a_message_sent_before_any_worker_started_is_answered(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    """RabbitMQ drops a message published to a queue nobody has declared: the receiver
    publishes to a queue no worker has declared yet, then the first worker starts."""
    env, receiver = private_queue(CELERY_BROKER_URL=RABBITMQ_URL)
    await builder_with_channel(db_sessions)
    async with httpx.AsyncClient() as client:
        response = await post_signed(client, f"{receiver}/webhooks/twilio", twilio_form("First!"))
    assert response.status_code == 200

    worker = start_worker(env, tmp_path / "worker.log", concurrency=2)
    try:
        [reply] = await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert reply["Body"] == "You said: First!"
    assert [kind(item) for item in await all_items(db_sessions)] == ["user", "assistant"]


@pytest.fixture
def receiver_process(service_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The receiver as a user runs it (plain `uvicorn webhooks.app:app`, which installs
    log handlers of its own, access log left at its default) at DEBUG, where it logs each
    accepted message, feeding the session's worker; yields its URL and its log file."""
    port = free_port()
    log = tmp_path / "receiver.log"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **service_env, "LOG_LEVEL": "DEBUG"}
    command = [sys.executable, "-m", "uvicorn", "webhooks.app:app", "--port", str(port)]
    with log.open("ab") as output:
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while "Application startup complete" not in log.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", log
    finally:
        process.terminate()
        process.wait(timeout=30)


def follow(message_id: str, received: list[dict[str, Any]], worked: list[dict[str, Any]]) -> dict:
    """What an operator gathers following one inbound message (by the provider's id) from
    the receiver's line to the reply sent: its inbox id, the task, session, turn and the
    sent part's ids."""
    [accepted] = [line for line in received if message_id in line["message"]]
    inbound_id = accepted["inbound_id"]
    [answering] = [
        line
        for line in worked
        if line.get("inbound_id") == inbound_id and "answering" in line["message"]
    ]
    turn_id = answering["turn_id"]
    [sent] = [
        line for line in worked if line.get("turn_id") == turn_id and "sent" in line["message"]
    ]
    # Celery's own line for the task carries its id too: when the worker took it.
    assert any(
        line.get("task_id") == answering["task_id"] and line["message"].endswith("received")
        for line in worked
    )
    assert answering["inbound_ids"] == [inbound_id]
    assert sent["session_id"] == answering["session_id"]
    return {
        "provider": accepted["provider"],
        "inbound_id": inbound_id,
        "session_id": answering["session_id"],
        "turn_id": turn_id,
        "outbound_id": sent["outbound_id"],
        "provider_message_id": sent["provider_message_id"],
    }


async def test_json_logs_follow_a_message_to_its_reply_without_numbers_bodies_or_secrets(
    celery_worker: Path,
    receiver_process: tuple[str, Path],
    db_sessions: async_sessionmaker[AsyncSession],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
    service_env: dict[str, str],
) -> None:
    url, receiver_log = receiver_process
    await builder_with_channel(db_sessions)
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    body = "my secret recipe is 3 eggs"
    twilio_message = twilio_form(body)
    meta_message = meta_text_message(body)
    async with httpx.AsyncClient() as client:
        handshake = {
            "hub.mode": "subscribe",
            "hub.verify_token": service_env["META_VERIFY_TOKEN"],
            "hub.challenge": "42",
        }
        assert (await client.get(f"{url}/webhooks/meta", params=handshake)).text == "42"
        assert (await post_signed(client, f"{url}/webhooks/twilio", twilio_message)).is_success
        notification = meta_notification([meta_message])
        assert (await post_meta(client, f"{url}/webhooks/meta", notification)).is_success
    [to_twilio] = await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")
    [to_meta] = await at_least(fake_graph.messages, 1, what="replies at the fake Graph API")
    await eventually(partial(all_answered, db_sessions), what="both turns closed")

    received = await asyncio.to_thread(json_lines, receiver_log)
    worked = await asyncio.to_thread(json_lines, celery_worker)
    assert received and worked
    by_twilio = follow(twilio_message["MessageSid"], received, worked)
    by_meta = follow(meta_message["id"], received, worked)
    assert (by_twilio["provider"], by_meta["provider"]) == ("twilio", "meta")
    assert by_twilio["provider_message_id"] == to_twilio["sid"]
    assert by_meta["provider_message_id"] == to_meta["id"]
    # The ids the logs lead to are the rows the conversation left.
    rows = {message.id: message for message in await inbound_messages(db_sessions)}
    for followed in (by_twilio, by_meta):
        inbound = rows[followed["inbound_id"]]
        assert str(inbound.session_id) == followed["session_id"]
        assert str(inbound.turn_id) == followed["turn_id"]
    replies = {str(reply.id): reply for reply in await outbound_messages(db_sessions)}
    assert {
        replies[followed["outbound_id"]].provider_message_id for followed in (by_twilio, by_meta)
    } == {to_twilio["sid"], to_meta["id"]}

    logs = await asyncio.to_thread(lambda: receiver_log.read_text() + celery_worker.read_text())
    secrets = [
        service_env[name]
        for name in (
            "TWILIO_AUTH_TOKEN",
            "META_APP_SECRET",
            "META_ACCESS_TOKEN",
            "META_VERIFY_TOKEN",
            "OPENAI_API_KEY",
            "CREDENTIALS_KEY",
        )
    ]
    replied = [to_twilio["Body"], to_meta["text"]["body"]]
    forbidden = [*secrets, "31612345678", META_USER_WA_ID, body, "recipe", *replied]
    assert [leak for leak in forbidden if leak in logs] == []
    assert "whatsapp:+316•••••678" in logs and "1650••••234" in logs


@pytest.fixture
async def refusing_database(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """Constraints that make Postgres refuse a row, quoting it (`DETAIL: Failing row
    contains (…)`): an inbox row with REFUSED_NAME, a session item with REFUSED_TEXT."""
    constraints = {
        "inbound_messages": f"profile_name IS DISTINCT FROM '{REFUSED_NAME}'",
        "session_items": f"item_data::text NOT LIKE '%{REFUSED_TEXT}%'",
    }
    async with db_sessions.begin() as db:
        for table, check in constraints.items():
            await db.execute(
                text(f"ALTER TABLE {table} ADD CONSTRAINT test_refuses CHECK ({check}) NOT VALID")
            )
    yield
    async with db_sessions.begin() as db:
        for table in constraints:
            await db.execute(text(f"ALTER TABLE {table} DROP CONSTRAINT test_refuses"))


REFUSED_NAME = "Zoë van Refusedinbox"
REFUSED_TEXT = "my refused recipe"


async def test_database_refusals_leave_no_name_or_text_in_the_logs(
    celery_worker: Path,
    receiver_process: tuple[str, Path],
    db_sessions: async_sessionmaker[AsyncSession],
    refusing_database: None,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    """The receiver refuses a webhook the inbox cannot store (422), the worker a turn
    whose input the session cannot store (failed after its attempts): both logs say
    what was refused, with none of the values Postgres quoted."""
    url, receiver_log = receiver_process
    await builder_with_channel(db_sessions)
    async with httpx.AsyncClient() as client:
        named = {**twilio_form("hello"), "ProfileName": REFUSED_NAME}
        refused = await post_signed(client, f"{url}/webhooks/twilio", named)
        stored = await post_signed(client, f"{url}/webhooks/twilio", twilio_form(REFUSED_TEXT))
    assert (refused.status_code, stored.status_code) == (422, 200)
    assert "violates check constraint" in refused.text and REFUSED_NAME not in refused.text
    await eventually(partial(all_answered, db_sessions), what="the refused turn to end")
    assert [turn.status for turn in await turns(db_sessions)] == ["failed"]

    logs = await asyncio.to_thread(lambda: receiver_log.read_text() + celery_worker.read_text())
    assert 'violates check constraint \\"test_refuses\\"' in logs
    assert [leak for leak in (REFUSED_NAME, REFUSED_TEXT, "Zoë", "recipe") if leak in logs] == []


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
