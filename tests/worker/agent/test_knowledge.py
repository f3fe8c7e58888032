"""A builder's bot answers from its own documents: the model calls `search_documents`,
the tool reads only that builder's chunks, and the call and its result are stored in
`session_items` like any other item. Real Postgres, the SDK's OpenAI model on the fake
Responses API, replies through the fake Twilio."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel
from db.document_store import replace_document
from tests.factories import builder_with_channel
from tests.fakes.openai import FakeOpenAI, function_call, message
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_items, kind
from tests.worker.conversation.test_turns import arrive
from worker.agent.knowledge import KNOWLEDGE_STYLE
from worker.conversation.inbound import process_inbound
from worker.process.runtime import Runtime

BAKERY_NUMBER = "whatsapp:+14155238886"
RIVAL_NUMBER = "whatsapp:+14155230000"


def searching_model(request: dict[str, Any]) -> list[dict[str, Any]]:
    """A model that looks the question up, then answers with what the tool returned."""
    last = request["input"][-1]
    if last.get("type") == "function_call_output":
        return [message(f"From our documents: {last['output']}")]
    question = request["input"][-1]["content"]
    return [function_call("search_documents", {"query": question})]


async def test_the_bot_answers_from_its_own_documents_only(
    db_sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    bakery = await builder_with_channel(db_sessions, address=BAKERY_NUMBER)
    rival = await builder_with_channel(db_sessions, address=RIVAL_NUMBER)
    async with db_sessions.begin() as db:
        await replace_document(bakery, "hours.md", ["Open Sunday from 8 until 12."], db=db)
        await replace_document(rival, "secrets.md", ["Secret recipe: rye and honey."], db=db)
        channel = await find_channel("twilio", BAKERY_NUMBER, db=db)
    assert channel is not None
    fake_openai.respond = searching_model

    await process_inbound(await arrive(db_sessions, channel, "Sunday hours"), runtime=runtime)
    await process_inbound(await arrive(db_sessions, channel, "secret recipe"), runtime=runtime)

    assert [m["Body"] for m in fake_twilio.messages] == [
        "From our documents: [source: hours.md]\nOpen Sunday from 8 until 12.",
        "From our documents: No passage of the business's documents matches 'secret recipe'.",
    ]
    items = await all_items(db_sessions)
    assert [kind(item) for item in items] == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
    ] * 2
    assert items[1]["name"] == "search_documents"
    assert "Open Sunday from 8 until 12." in items[2]["output"]
    first = fake_openai.requests[0]
    assert KNOWLEDGE_STYLE in first["instructions"]
    assert {tool["name"] for tool in first["tools"]} == {
        "current_time",
        "search_documents",
        "reply_with_options",
    }
