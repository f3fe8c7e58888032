"""A builder's own instructions, model settings and history window reach the model
request, the turn after they are edited too (a worker keeps the agents it built)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel, update_builder
from tests.factories import BOT_NUMBER, builder_with_channel
from tests.fakes.openai import FakeOpenAI
from tests.queries import kind
from tests.worker.conversation.test_turns import arrive
from worker.conversation.inbound import process_inbound
from worker.process.runtime import Runtime


async def test_instructions_temperature_max_tokens_and_history_window_are_the_builder_s(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime, fake_openai: FakeOpenAI
) -> None:
    builder_id = await builder_with_channel(db_sessions)
    async with db_sessions() as db:
        channel = await find_channel("twilio", BOT_NUMBER, db=db)
    assert channel is not None
    for text in ["Hi", "Hello"]:
        await process_inbound(await arrive(db_sessions, channel, text), runtime=runtime)
    default = fake_openai.requests[-1]
    assert "temperature" not in default and "max_output_tokens" not in default
    assert not default["instructions"].startswith("Answer like a pirate.")
    assert [kind(item) for item in default["input"]] == ["user", "assistant", "user"]

    async with db_sessions.begin() as db:
        changes = {
            "temperature": 0.2,
            "max_tokens": 120,
            "history_window": 2,
            "instructions": "Answer like a pirate.",
        }
        await update_builder(builder_id, changes, db=db)
    await process_inbound(await arrive(db_sessions, channel, "Thanks"), runtime=runtime)

    tuned = fake_openai.requests[-1]
    assert (tuned["temperature"], tuned["max_output_tokens"]) == (0.2, 120)
    assert tuned["instructions"].startswith("Answer like a pirate.")
    assert [item["content"] for item in tuned["input"] if kind(item) == "user"] == [
        "Hello",
        "Thanks",
    ]
