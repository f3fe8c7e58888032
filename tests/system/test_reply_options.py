"""Replies that offer choices, through the real receiver and Celery worker: the model
calls `reply_with_options` (a scripted fake OpenAI), Meta gets reply buttons or a list,
Twilio a numbered list, and the user's tap or "2" reaches the model as the option."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.transcript import transcript_line
from tests.conftest import start_worker
from tests.crash import killed_after_the_provider_took
from tests.factories import (
    BOT_NUMBER,
    META_PHONE_NUMBER_ID,
    META_USER_WA_ID,
    USER_NUMBER,
    builder_with_channel,
    meta_fixture,
    meta_notification,
    meta_text_message,
    post_meta,
    post_signed,
    twilio_form,
)
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI, function_call, latest_user_text, message
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, all_items, kind, outbound_messages
from tests.waiting import at_least, eventually

TIMES = ["Today 15:00", "Tomorrow 10:00", "Friday 09:30"]
CAKES = ["Croissant", "Sourdough loaf", "Cinnamon roll", "Apple pie"]
LONG_CAKE = "Chocolate cake with raspberries and cream"
ADDED_BY_THE_FAKE = ("phone_number_id", "access_token", "id")


@pytest.fixture(autouse=True)
async def worker_settles(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    await eventually(partial(all_answered, db_sessions), what="the worker to finish its turns")


def offering(options: list[str], list_button: str = "Choose") -> Callable[..., list[Any]]:
    """A model that answers "what times …?" with the options, anything else by echoing."""

    def respond(request: dict[str, Any]) -> list[dict[str, Any]]:
        text = latest_user_text(request)
        if "what" in text.lower():
            arguments = {"text": "Which one suits you?", "options": options}
            return [function_call("reply_with_options", {**arguments, "list_button": list_button})]
        return [message(f"You said: {text}")]

    return respond


async def test_meta_offers_reply_buttons_and_a_tap_reaches_the_model_as_its_title(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    fake_openai.respond = offering(TIMES)
    url = f"{live_receiver}/webhooks/meta"
    async with httpx.AsyncClient() as client:
        asked = meta_notification([meta_text_message("What times do you have?")])
        assert (await post_meta(client, url, asked)).status_code == 200
        [offer] = await at_least(fake_graph.messages, 1, what="the offer at the fake Graph API")
        await eventually(partial(all_answered, db_sessions), what="the first turn closed")
        [recorded] = await outbound_messages(db_sessions)
        assert {k: v for k, v in offer.items() if k not in ADDED_BY_THE_FAKE} == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": META_USER_WA_ID,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": "Which one suits you?"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "1", "title": "Today 15:00"}},
                        {"type": "reply", "reply": {"id": "2", "title": "Tomorrow 10:00"}},
                        {"type": "reply", "reply": {"id": "3", "title": "Friday 09:30"}},
                    ]
                },
            },
            "biz_opaque_callback_data": str(recorded.id),
        }
        assert len(fake_openai.requests) == 1  # the offer is the answer: no second model call

        tap = _button_tap(offer["id"], button_id="2", title="Tomorrow 10:00")
        assert (await post_meta(client, url, meta_notification([tap]))).status_code == 200
        await at_least(fake_graph.messages, 2, what="the answer to the tap")

    assert latest_user_text(fake_openai.requests[-1]) == "Tomorrow 10:00"
    assert fake_graph.messages[1]["text"]["body"] == "You said: Tomorrow 10:00"
    items = await all_items(db_sessions)
    assert [kind(item) for item in items] == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
        "user",
        "assistant",
    ]
    shown = "Which one suits you?\n\n1. Today 15:00\n2. Tomorrow 10:00\n3. Friday 09:30"
    assert transcript_line(items[3]).text == shown
    # The model's next call read what was offered, in words.
    assert shown in json.dumps(fake_openai.requests[-1]["input"], ensure_ascii=False).replace(
        "\\n", "\n"
    )


async def test_meta_offers_a_list_with_long_titles_shortened(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    fake_openai.respond = offering([*CAKES, LONG_CAKE], list_button="See all our cakes today")
    async with httpx.AsyncClient() as client:
        asked = meta_notification([meta_text_message("What cakes are there?")])
        assert (await post_meta(client, f"{live_receiver}/webhooks/meta", asked)).is_success
        [offer] = await at_least(fake_graph.messages, 1, what="the offer at the fake Graph API")

    rows = [{"id": str(n), "title": title} for n, title in enumerate(CAKES, 1)]
    rows.append({"id": "5", "title": "Chocolate cake with ras…", "description": LONG_CAKE})
    assert offer["type"] == "interactive"
    assert offer["interactive"] == {
        "type": "list",
        "body": {"text": "Which one suits you?"},
        "action": {"button": "See all our cakes t…", "sections": [{"rows": rows}]},
    }


async def test_twilio_numbers_the_options_and_a_bare_number_names_the_choice(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    await builder_with_channel(db_sessions)
    fake_openai.respond = offering(TIMES)
    url = f"{live_receiver}/webhooks/twilio"
    async with httpx.AsyncClient() as client:
        assert (await post_signed(client, url, twilio_form("What times do you have?"))).is_success
        await at_least(fake_twilio.messages, 1, what="the offer at the fake Twilio")
        await eventually(partial(all_answered, db_sessions), what="the first turn closed")
        assert (await post_signed(client, url, twilio_form(" 2 "))).is_success
        sent = await at_least(fake_twilio.messages, 2, what="the answer to the choice")

    assert [(m["From"], m["To"]) for m in sent] == [(BOT_NUMBER, USER_NUMBER)] * 2
    assert sent[0]["Body"] == (
        "Which one suits you?\n\n1. Today 15:00\n2. Tomorrow 10:00\n3. Friday 09:30"
    )
    assert latest_user_text(fake_openai.requests[-1]) == "2 (chose: Tomorrow 10:00)"
    assert sent[1]["Body"] == "You said: 2 (chose: Tomorrow 10:00)"
    offer, answer = await outbound_messages(db_sessions)
    assert offer.options == {"titles": TIMES, "list_button": "Choose"}
    assert answer.options is None


@pytest.mark.slow
@pytest.mark.parametrize("provider", ["twilio", "meta"])
async def test_an_offer_the_provider_took_before_its_worker_died_is_not_sent_again(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
    tmp_path: Path,
    provider: str,
) -> None:
    """Resumed, the turn finds the offer sent (Meta's status names it; Twilio's list has
    its numbered text) and sends nothing twice."""
    env, receiver = private_queue(
        CELERY_VISIBILITY_TIMEOUT="5",
        RUN_TIMEOUT_SECONDS="4",
        CONVERSATION_LEASE_SECONDS="6",
        META_STATUS_WAIT_SECONDS="2",
    )
    fake_openai.respond = offering(TIMES)
    fake = fake_twilio if provider == "twilio" else fake_graph
    fake.hold_after_accept_seconds = 60  # the provider takes the offer, then the worker dies
    fake_graph.status_webhooks_to = receiver
    doomed = start_worker(env, tmp_path / "doomed.log", concurrency=2)
    async with httpx.AsyncClient() as client:
        if provider == "twilio":
            await builder_with_channel(db_sessions)
            form = twilio_form("What times do you have?")
            response = await post_signed(client, f"{receiver}/webhooks/twilio", form)
        else:
            await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
            body = meta_notification([meta_text_message("What times do you have?")])
            response = await post_meta(client, f"{receiver}/webhooks/meta", body)
    assert response.status_code == 200

    taken = await killed_after_the_provider_took(
        doomed, fake, env=env, tmp_path=tmp_path, db_sessions=db_sessions
    )

    assert fake.messages == [taken]
    if provider == "twilio":
        assert taken["Body"].endswith("\n\n1. Today 15:00\n2. Tomorrow 10:00\n3. Friday 09:30")
    else:
        assert taken["interactive"]["type"] == "button"
    [reply] = await outbound_messages(db_sessions)
    assert reply.provider_message_id == taken.get("sid", taken.get("id"))
    assert reply.options == {"titles": TIMES, "list_button": "Choose"}


def _button_tap(offer_id: str, *, button_id: str, title: str) -> dict[str, Any]:
    """The user's tap on a reply button, shaped as Meta's captured `button_reply`."""
    captured = json.loads(meta_fixture("interactive_button_reply.json"))
    [tap] = captured["entry"][0]["changes"][0]["value"]["messages"]
    tap["from"] = META_USER_WA_ID
    tap["id"] = f"wamid.TAP{button_id}"
    tap["context"] = {"from": META_PHONE_NUMBER_ID, "id": offer_id}
    tap["interactive"]["button_reply"] = {"id": button_id, "title": title}
    assert tap["type"] == "interactive" and tap["interactive"]["type"] == "button_reply"
    return dict(tap)
