"""A conversation's turns, driven in-process through the plain functions the Celery task
calls, against real Postgres, the SDK's OpenAI model on a fake Responses API and
twilio's `Client` on a fake Twilio."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel, update_builder
from db.inbox import get_inbound
from db.models import AgentSessionRow, Channel, Turn
from db.sessions import LeaseLostError, acquire_lease, get_or_create_session
from db.turn_session import TurnSession
from db.turns import start_turn
from tests.factories import (
    BOT_NUMBER,
    META_USER_WA_ID,
    USER_NUMBER,
    arrive,
    builder_with_channel,
)
from tests.fakes.meta import Failure as GraphFailure
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import Failure, FakeOpenAI, function_call, message
from tests.fakes.server import free_port
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, all_items, inbound_messages, kind, outbound_messages, turns
from tests.worker.conversation.dead_worker import turn_of_a_dead_worker
from worker.conversation.delivery import SEND_ATTEMPTS
from worker.conversation.inbound import RetryLater, answer_conversation, process_inbound
from worker.conversation.lease import take_lease
from worker.conversation.loaded_turn import reload_turn
from worker.conversation.turn_runner import DEFAULT_FALLBACK_REPLY
from worker.process.runtime import Runtime


async def test_a_retried_turn_stores_the_user_message_once(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    inbound_id = await arrive(db_sessions, channel, "Hello")
    fake_openai.failures.append(Failure(503))
    with pytest.raises(RetryLater, match="model API 503"):
        await process_inbound(inbound_id, runtime=runtime)
    assert [kind(item) for item in await all_items(db_sessions)] == ["user"]

    await process_inbound(inbound_id, runtime=runtime)

    assert [kind(item) for item in await all_items(db_sessions)] == ["user", "assistant"]
    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hello"]
    assert [kind(item) for item in fake_openai.requests[1]["input"]] == ["user"]
    [turn] = await turns(db_sessions)
    assert (turn.status, turn.attempts) == ("replied", 2)


async def test_a_recorded_reply_is_sent_on_retry_not_generated_again(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    inbound_id = await arrive(db_sessions, channel, "Hello")
    fake_twilio.failures.extend([(503, 20500)] * SEND_ATTEMPTS)
    with pytest.raises(RetryLater, match="send failed"):
        await process_inbound(inbound_id, runtime=runtime)
    await process_inbound(inbound_id, runtime=runtime)
    assert len(fake_openai.requests) == 1
    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hello"]
    [reply] = await outbound_messages(db_sessions)
    assert (reply.status, reply.provider_message_id) == ("queued", fake_twilio.messages[0]["sid"])


async def test_a_run_that_finished_before_its_worker_died_is_not_run_again(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    inbound_id = await arrive(db_sessions, channel, "Hello")
    # What a worker leaves when it dies after the runner saved the final answer but
    # before the reply was recorded: the turn's items are stored, its lease runs out.
    dead_workers_session = await turn_of_a_dead_worker(
        db_sessions, channel, inbound_id, engine=runtime.engine
    )
    await dead_workers_session.add_items([{"role": "user", "content": "Hello"}])
    await dead_workers_session.add_items([message("Answer stored before the crash")])

    await process_inbound(inbound_id, runtime=runtime)

    assert fake_openai.requests == []
    assert [m["Body"] for m in fake_twilio.messages] == ["Answer stored before the crash"]
    assert [kind(item) for item in await all_items(db_sessions)] == ["user", "assistant"]


async def test_a_stale_worker_cannot_write_after_its_lease_was_taken(
    db_sessions: async_sessionmaker[AsyncSession], channel: Channel, runtime: Runtime
) -> None:
    async with db_sessions.begin() as db:
        session_id = await get_or_create_session(channel.builder_id, "whatsapp", "+1555", db=db)
        stale = await acquire_lease(session_id, ttl_seconds=0, db=db)
        current = await acquire_lease(session_id, ttl_seconds=60, db=db)
    assert stale is not None and current is not None
    session = TurnSession(
        session_id,
        engine=runtime.engine,
        turn_id=uuid.uuid4(),
        lease_token=stale.token,
        saves_input=True,
    )
    with pytest.raises(LeaseLostError):
        await session.add_items([{"role": "user", "content": "late write"}])
    assert await all_items(db_sessions) == []


async def test_a_busy_conversations_message_is_left_to_its_holder(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    """The task of a message that arrives mid-turn ends at once (no retry loop); the
    worker holding the conversation answers it when its turn closes."""
    first = await arrive(db_sessions, channel, "Hello")
    async with db_sessions.begin() as db:  # a worker took the conversation for `first`
        external_id = USER_NUMBER.removeprefix("whatsapp:")
        session_id = await get_or_create_session(channel.builder_id, "whatsapp", external_id, db=db)
        lease = await take_lease(session_id, runtime=runtime, db=db)
        turn = await start_turn(session_id, [first], db=db)
        inbound_row = await get_inbound(first, db=db)
        assert inbound_row is not None
        inbound_row.session_id = session_id
    second = await arrive(db_sessions, channel, "Are you there?")

    await process_inbound(second, runtime=runtime)  # busy: returns, nothing sent
    assert fake_twilio.messages == []

    loaded = await reload_turn(turn, runtime=runtime)
    await answer_conversation(loaded, lease=lease, runtime=runtime)
    assert [m["Body"] for m in fake_twilio.messages] == [
        "You said: Hello",
        "You said: Are you there?",
    ]
    assert {m.status for m in await inbound_messages(db_sessions)} == {"processed"}
    assert await all_answered(db_sessions)


async def test_a_permanent_model_error_fails_the_turn_and_sends_the_fallback_once(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    inbound_id = await arrive(db_sessions, channel, "Hello")
    fake_openai.failures.append(Failure(400, {"error": {"message": "bad request"}}))
    await process_inbound(inbound_id, runtime=runtime)
    await process_inbound(inbound_id, runtime=runtime)
    [turn] = await turns(db_sessions)
    assert turn.status == "failed" and "model API 400" in (turn.error or "")
    [message] = await inbound_messages(db_sessions)
    assert message.status == "failed" and message.error == turn.error
    assert [m["Body"] for m in fake_twilio.messages] == [DEFAULT_FALLBACK_REPLY]
    assert await all_items(db_sessions) == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": DEFAULT_FALLBACK_REPLY},
    ]


async def test_the_fallback_is_the_builder_s_own_text(
    db_sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    await builder_with_channel(db_sessions, fallback_reply="We'll call you back.")
    async with db_sessions() as db:
        channel = await find_channel("twilio", BOT_NUMBER, db=db)
    assert channel is not None
    fake_openai.failures.append(Failure(400))
    await process_inbound(await arrive(db_sessions, channel, "Hello"), runtime=runtime)
    assert [m["Body"] for m in fake_twilio.messages] == ["We'll call you back."]


async def test_a_model_that_never_stops_calling_tools_ends_failed(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.respond = lambda _request: [function_call("current_time", {})]
    inbound_id = await arrive(db_sessions, channel, "Loop forever")
    await process_inbound(inbound_id, runtime=runtime)
    [turn] = await turns(db_sessions)
    assert turn.status == "failed" and "MaxTurnsExceeded" in (turn.error or "")
    assert len(fake_openai.requests) == 8


async def test_transient_failures_give_up_after_the_attempt_limit(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
) -> None:
    inbound_id = await arrive(db_sessions, channel, "Hello")
    limit = runtime.settings.turn_max_attempts
    fake_openai.failures.extend(Failure(500) for _ in range(limit))
    for _ in range(limit):
        with pytest.raises(RetryLater):
            await process_inbound(inbound_id, runtime=runtime)
    await process_inbound(inbound_id, runtime=runtime)
    [turn] = await turns(db_sessions)
    assert turn.status == "failed" and f"gave up after {limit} attempts" in (turn.error or "")


async def test_long_replies_are_split_under_twilios_limit_at_sentences(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    long_answer = " ".join(f"Sentence number {n} is here." for n in range(150))
    fake_openai.respond = lambda _request: [message(long_answer)]
    await process_inbound(await arrive(db_sessions, channel, "Tell me a lot"), runtime=runtime)
    bodies = [m["Body"] for m in fake_twilio.messages]
    assert len(bodies) == 3
    assert all(len(body) <= 1600 and body.endswith(".") for body in bodies)
    assert " ".join(bodies) == long_answer
    assert [reply.part for reply in await outbound_messages(db_sessions)] == [0, 1, 2]


async def test_a_recipient_twilio_rejects_fails_the_turn_with_the_code(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    fake_twilio.failures.append((400, 21211))
    await process_inbound(await arrive(db_sessions, channel, "Hello"), runtime=runtime)
    [reply] = await outbound_messages(db_sessions)
    assert reply.status == "failed" and "code 21211" in (reply.error or "")
    [turn] = await turns(db_sessions)
    assert turn.status == "failed"


async def test_media_the_worker_may_not_fetch_reach_the_agent_in_words(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
) -> None:
    media = [{"url": "https://api.twilio.com/media/1", "content_type": "image/jpeg"}]
    await process_inbound(await arrive(db_sessions, channel, "Look", media), runtime=runtime)
    [user_item] = fake_openai.requests[0]["input"]
    # The tests' Twilio media hosts are the fake's: api.twilio.com is not one of them.
    assert (
        user_item["content"] == "[photo: could not be read (not from the provider's hosts)]\nLook"
    )


async def test_finished_and_unknown_messages_are_no_ops(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
) -> None:
    inbound_id = await arrive(db_sessions, channel, "Hello")
    await process_inbound(inbound_id, runtime=runtime)
    await process_inbound(inbound_id, runtime=runtime)
    await process_inbound(10**9, runtime=runtime)
    assert len(fake_openai.requests) == 1


async def test_a_run_past_its_deadline_is_cancelled_whole_and_retried(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    hasty = runtime_with(run_timeout_seconds=0.5)
    fake_openai.delay_seconds = 1.0
    inbound_id = await arrive(db_sessions, channel, "Hello")
    with pytest.raises(RetryLater, match=r"longer than 0\.5s"):
        await process_inbound(inbound_id, runtime=hasty)
    await asyncio.sleep(1.5)  # the model has answered by now; nobody may be listening
    assert [kind(item) for item in await all_items(db_sessions)] == ["user"]
    assert fake_twilio.messages == []


async def test_a_database_outage_is_retried_later(runtime_with: Callable[..., Runtime]) -> None:
    unreachable = f"postgresql+psycopg://127.0.0.1:{free_port()}/none"
    cut_off = runtime_with(database_url=unreachable)
    with pytest.raises(RetryLater, match="database unavailable"):
        await process_inbound(1, runtime=cut_off)


async def test_a_meta_reply_survives_a_rate_limit_and_is_sent_once(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_graph: FakeGraphAPI,
) -> None:
    inbound_id = await arrive(db_sessions, meta_channel, "Hello")
    fake_graph.failures.append(GraphFailure(429, 130429))
    await process_inbound(inbound_id, runtime=runtime)
    [sent] = fake_graph.messages
    assert (sent["to"], sent["text"]["body"]) == (META_USER_WA_ID, "You said: Hello")
    [reply] = await outbound_messages(db_sessions)
    assert (reply.status, reply.provider_message_id) == ("sent", sent["id"])
    [inbound_row] = await inbound_messages(db_sessions)
    assert [t["message_id"] for t in fake_graph.typing] == [inbound_row.provider_message_id]


async def test_the_typing_indicator_is_refreshed_during_a_long_run(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    patient = runtime_with(typing_refresh_seconds=0.2)
    fake_openai.delay_seconds = 0.7
    await process_inbound(await arrive(db_sessions, meta_channel, "Hi"), runtime=patient)
    assert len(fake_graph.typing) >= 3
    assert len(fake_graph.messages) == 1


async def test_an_unreadable_message_gets_the_builder_s_canned_reply(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    inbound_id = await arrive(
        db_sessions, meta_channel, "[unsupported message: hologram]", kind="unsupported"
    )
    await process_inbound(inbound_id, runtime=runtime)
    assert fake_openai.requests == []
    assert [m["text"]["body"] for m in fake_graph.messages] == [
        "I can only read text, photos and locations."
    ]
    assert await all_items(db_sessions) == [
        {"role": "user", "content": "[unsupported message: hologram]"},
        {"role": "assistant", "content": "I can only read text, photos and locations."},
    ]


async def test_markdown_from_the_model_is_sent_as_whatsapp_formatting(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    fake_openai.respond = lambda _request: [
        message("## Today\n**Sourdough** is [here](https://x.example)")
    ]
    await process_inbound(await arrive(db_sessions, meta_channel, "Menu?"), runtime=runtime)
    assert [m["text"]["body"] for m in fake_graph.messages] == [
        "*Today*\n*Sourdough* is here (https://x.example)"
    ]


async def test_twilio_shows_typing_when_enabled(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_twilio: FakeTwilio,
) -> None:
    typing = runtime_with(twilio_typing_indicator=True)
    inbound_id = await arrive(db_sessions, channel, "Hello")
    await process_inbound(inbound_id, runtime=typing)
    [inbound_row] = await inbound_messages(db_sessions)
    assert fake_twilio.typing == [
        {"channel": "whatsapp", "messageId": inbound_row.provider_message_id}
    ]
    assert len(fake_twilio.messages) == 1


async def test_a_meta_user_is_keyed_by_user_id_with_both_ids_kept(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_graph: FakeGraphAPI,
) -> None:
    inbound_id = await arrive(
        db_sessions,
        meta_channel,
        "Hi",
        user_id="US.13491208655302741918",
        profile_name="Sheena",
    )
    await process_inbound(inbound_id, runtime=runtime)
    async with db_sessions() as db:
        session = await db.scalar(select(AgentSessionRow))
    assert session is not None
    assert (session.external_id, session.wa_id, session.user_id, session.display_name) == (
        "US.13491208655302741918",
        META_USER_WA_ID,
        "US.13491208655302741918",
        "Sheena",
    )
    assert [m["to"] for m in fake_graph.messages] == [META_USER_WA_ID]


async def test_a_burst_within_the_window_is_answered_as_one_turn(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    patient = runtime_with(coalesce_window_seconds=0.5)
    first = await arrive(db_sessions, channel, "Hi")
    answering = asyncio.create_task(process_inbound(first, runtime=patient))
    await asyncio.sleep(0.2)
    await arrive(db_sessions, channel, "I'd like a cake")
    await answering
    [request] = fake_openai.requests
    assert [item["content"] for item in request["input"]] == ["Hi", "I'd like a cake"]
    assert len(fake_twilio.messages) == 1
    assert len(await turns(db_sessions)) == 1


async def test_a_sender_over_the_rate_limit_waits_and_is_answered_once(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    limited = runtime_with(sender_turns_per_minute=2)
    for text in ("one", "two"):
        await process_inbound(await arrive(db_sessions, channel, text), runtime=limited)
    third = await arrive(db_sessions, channel, "three")
    fourth = await arrive(db_sessions, channel, "four")
    with pytest.raises(RetryLater, match="over its rate") as deferred:
        await process_inbound(third, runtime=limited)
    assert 0 < deferred.value.countdown <= 60
    async with db_sessions.begin() as db:  # a minute passes
        await db.execute(update(Turn).values(created_at=Turn.created_at - timedelta(minutes=1)))
    await process_inbound(fourth, runtime=limited)
    assert len(fake_twilio.messages) == 3
    assert [item["content"] for item in fake_openai.requests[-1]["input"][-2:]] == ["three", "four"]
    assert {m.status for m in await inbound_messages(db_sessions)} == {"processed"}


async def test_a_builder_without_a_limit_is_not_held_to_the_global_one(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_twilio: FakeTwilio,
) -> None:
    async with db_sessions.begin() as db:
        await update_builder(channel.builder_id, {"turns_per_minute": 0}, db=db)
    strict = runtime_with(sender_turns_per_minute=1)
    for text in ("one", "two", "three"):
        await process_inbound(await arrive(db_sessions, channel, text), runtime=strict)
    assert [m["Body"] for m in fake_twilio.messages] == [
        "You said: one",
        "You said: two",
        "You said: three",
    ]


async def test_a_model_rate_limit_is_retried_no_sooner_than_it_asks(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.failures.append(Failure(429, headers={"Retry-After": "7"}))
    with pytest.raises(RetryLater, match="model API 429") as later:
        await process_inbound(await arrive(db_sessions, channel, "Hello"), runtime=runtime)
    assert later.value.countdown >= 7


def assert_calls_paired(model_input: list[dict[str, Any]]) -> None:
    """Every tool result the model sees follows the call it answers, and every call has one."""
    calls = [item["call_id"] for item in model_input if item.get("type") == "function_call"]
    outputs = [
        item["call_id"] for item in model_input if item.get("type") == "function_call_output"
    ]
    assert calls == outputs
    for index, item in enumerate(model_input):
        if item.get("type") == "function_call_output":
            assert any(
                earlier.get("type") == "function_call" and earlier["call_id"] == item["call_id"]
                for earlier in model_input[:index]
            )


async def test_a_turn_whose_items_hold_a_nul_is_answered(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    """A NUL (U+0000) in what the model sends, in its tool call and in its answer, is
    stored in the session as it came; the turn is answered, the user reads U+FFFD."""

    def model_with_a_nul(request: dict[str, Any]) -> list[dict[str, Any]]:
        if request["input"][-1].get("type") == "function_call_output":
            return [message("It is noon\x00 here.")]
        call = function_call("current_time", {"timezone": "UTC"})
        return [{**call, "arguments": '{"timezone": "UTC\x00"}'}]

    fake_openai.respond = model_with_a_nul
    await process_inbound(await arrive(db_sessions, channel, "What time is it?"), runtime=runtime)

    assert [m["Body"] for m in fake_twilio.messages] == ["It is noon\ufffd here."]
    stored = await all_items(db_sessions)
    assert [kind(item) for item in stored] == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
    ]
    assert stored[1]["arguments"] == '{"timezone": "UTC\x00"}'
    assert stored[3]["content"][0]["text"] == "It is noon\x00 here."
    [turn] = await turns(db_sessions)
    assert turn.status == "replied"


@pytest.mark.parametrize("failure", ["model 500", "deadline"])
async def test_a_run_that_fails_after_a_tool_call_leaves_a_usable_history(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    failure: str,
) -> None:
    hasty = runtime_with(run_timeout_seconds=1.0)
    fake_openai.faults[2] = Failure(500) if failure == "model 500" else 2.0
    inbound_id = await arrive(db_sessions, channel, "What time is it?")
    with pytest.raises(RetryLater):
        await process_inbound(inbound_id, runtime=hasty)
    stored = await all_items(db_sessions)
    assert [kind(item) for item in stored] == ["user", "function_call", "function_call_output"]
    await process_inbound(inbound_id, runtime=hasty)
    retry_input = fake_openai.requests[-1]["input"]
    assert [kind(item) for item in retry_input] == ["user", "function_call", "function_call_output"]
    assert_calls_paired(retry_input)
    assert [kind(item) for item in await all_items(db_sessions)][-1] == "assistant"
    assert len(fake_twilio.messages) == 1


async def test_the_model_reads_the_history_window_from_its_first_user_message(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_openai: FakeOpenAI,
) -> None:
    """With HISTORY_WINDOW=5 the third turn's window begins with the first turn's tool
    result, whose call fell outside it (the model API refuses such an orphan): the model
    reads from the next user message on, and nothing older."""
    windowed = runtime_with(history_window=5)
    for text in ["What time is it?", "Hello", "Thanks"]:
        await process_inbound(await arrive(db_sessions, channel, text), runtime=windowed)

    assert len(await all_items(db_sessions)) == 8
    last_request = fake_openai.requests[-1]["input"]
    assert [kind(item) for item in last_request] == ["user", "assistant", "user"]
    assert [item["content"] for item in last_request if kind(item) == "user"] == [
        "Hello",
        "Thanks",
    ]
