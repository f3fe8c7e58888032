"""The web chat's turn driven in-process, as the dashboard's chat route drives it: its
failures told in the builder's words, and the conversation free again at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Channel
from tests.fakes.openai import Failure, FakeOpenAI
from tests.queries import all_items, kind
from worker.conversation.web_chat import ChatEvent, chat_turn, take_conversation
from worker.process.runtime import Runtime


async def test_a_run_past_its_deadline_is_told_and_stopped_whole(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_openai: FakeOpenAI,
) -> None:
    hasty = runtime_with(run_timeout_seconds=0.5)
    fake_openai.delay_seconds = 1.0
    events: list[ChatEvent] = []
    turn = await take_conversation(channel.builder_id, "slow", runtime=hasty)

    await chat_turn(turn, "Hello", runtime=hasty, emit=events.append)

    assert events == [
        ChatEvent("error", {"message": "the agent run took longer than RUN_TIMEOUT_SECONDS"})
    ]
    await take_conversation(channel.builder_id, "slow", runtime=hasty)  # free again
    await asyncio.sleep(1.5)  # the model has answered by now; nobody may be listening
    assert [kind(item) for item in await all_items(db_sessions)] == ["user"]


async def test_a_refused_model_call_is_told_without_the_api_s_own_words(
    channel: Channel, runtime: Runtime, fake_openai: FakeOpenAI
) -> None:
    fake_openai.failures.append(Failure(400, {"error": {"message": "secret detail"}}))
    events: list[ChatEvent] = []
    turn = await take_conversation(channel.builder_id, "refused", runtime=runtime)

    await chat_turn(turn, "Hello", runtime=runtime, emit=events.append)

    assert events == [ChatEvent("error", {"message": "the model API answered 400"})]
    answered: list[ChatEvent] = []
    again = await take_conversation(channel.builder_id, "refused", runtime=runtime)
    await chat_turn(again, "Hello", runtime=runtime, emit=answered.append)
    assert answered[-1].kind == "done" and answered[-1].data["reply"] == "You said: Hello"
