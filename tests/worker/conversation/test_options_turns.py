"""Turns whose answer offers options, in-process through the plain functions the Celery
task calls: a long offer split so its last part can carry buttons, a refused offer the
model mends, and a run that finished before its worker died answered with the options."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Channel
from tests.factories import META_USER_WA_ID, arrive
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI, function_call, latest_user_text, message
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_items, kind, outbound_messages
from tests.worker.conversation.dead_worker import turn_of_a_dead_worker
from worker.channels.meta_channel import INTERACTIVE_MAX_BODY
from worker.conversation.inbound import process_inbound
from worker.process.runtime import Runtime

OFFER = {"text": "Which size?", "options": ["Small", "Large"], "list_button": "Sizes"}
SHOWN = "Which size?\n\n1. Small\n2. Large"


async def test_a_long_offer_sends_its_text_first_and_the_buttons_under_the_rest(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    long_text = " ".join(f"Sentence number {n} is here." for n in range(60))
    offer = {**OFFER, "text": long_text}
    fake_openai.respond = lambda _request: [function_call("reply_with_options", offer)]
    await process_inbound(await arrive(db_sessions, meta_channel, "Sizes?"), runtime=runtime)

    first, second = fake_graph.messages
    assert first["type"] == "text"
    assert second["type"] == "interactive"
    body = second["interactive"]["body"]["text"]
    assert len(body) <= INTERACTIVE_MAX_BODY and body.endswith(".")
    assert f"{first['text']['body']} {body}" == long_text
    assert [r["reply"]["title"] for r in second["interactive"]["action"]["buttons"]] == [
        "Small",
        "Large",
    ]
    parts = await outbound_messages(db_sessions)
    assert [part.options for part in parts] == [
        None,
        {"titles": ["Small", "Large"], "list_button": "Sizes"},
    ]


async def test_an_offer_the_tool_refuses_goes_back_to_the_model(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    def respond(request: dict[str, Any]) -> list[dict[str, Any]]:
        last = request["input"][-1]
        if last.get("type") == "function_call_output":
            return [function_call("reply_with_options", OFFER)]
        return [function_call("reply_with_options", {**OFFER, "options": []})]

    fake_openai.respond = respond
    await process_inbound(await arrive(db_sessions, channel, "Sizes?"), runtime=runtime)

    refused = fake_openai.requests[1]["input"][-1]
    assert refused["output"] == "Error: offer between 1 and 10 different choices."
    assert [m["Body"] for m in fake_twilio.messages] == [SHOWN]


async def test_an_offer_stored_before_the_worker_died_is_sent_with_its_options(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    inbound_id = await arrive(db_sessions, meta_channel, "Sizes?")
    # What a worker leaves when it dies after the runner stored the tool's offer, before
    # the text the user reads was stored: the turn's items are there, its lease runs out.
    dead_workers_session = await turn_of_a_dead_worker(
        db_sessions, meta_channel, inbound_id, engine=runtime.engine
    )
    call = function_call("reply_with_options", OFFER)
    offer = {"text": "Which size?", "titles": ["Small", "Large"], "list_button": "Sizes"}
    output = json.dumps({"offered_to_user": offer})
    await dead_workers_session.add_items([{"role": "user", "content": "Sizes?"}])
    await dead_workers_session.add_items(
        [call, {"type": "function_call_output", "call_id": call["call_id"], "output": output}]
    )

    await process_inbound(inbound_id, runtime=runtime)

    assert fake_openai.requests == []
    [sent] = fake_graph.messages
    assert (sent["to"], sent["interactive"]["type"]) == (META_USER_WA_ID, "button")
    items = await all_items(db_sessions)
    assert [kind(item) for item in items] == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
    ]
    assert items[-1]["content"] == SHOWN


async def test_a_number_with_no_options_offered_is_just_a_number(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    fake_openai.respond = lambda request: [message(f"You said: {latest_user_text(request)}")]
    await process_inbound(await arrive(db_sessions, channel, "Hello"), runtime=runtime)
    await process_inbound(await arrive(db_sessions, channel, "2"), runtime=runtime)
    assert latest_user_text(fake_openai.requests[-1]) == "2"
