"""The streaming chat API against the real app and the SDK's OpenAI model on the fake
Responses API (streaming): events read by a real HTTP client as they arrive, one turn
at a time per conversation, and a whole history when the client leaves mid-stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import create_engine, create_sessionmaker
from db.models import AgentSessionRow
from tests.factories import builder_token, builder_with_channel
from tests.fakes.openai import Failure, FakeOpenAI
from tests.queries import kind
from tests.waiting import eventually
from tests.webhooks.dashboard.conftest import World
from tests.webhooks.test_receiver_metrics import TOKEN, scrape


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as (event, data), parsed from the raw lines."""
    kind_, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind_ = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data += line.removeprefix("data: ")
        elif line == "" and data:
            yield kind_, json.loads(data)
            kind_, data = "message", ""


async def chat(
    client: httpx.AsyncClient, url: str, conversation: str, message: str
) -> list[tuple[str, dict[str, Any]]]:
    body = {"conversation_id": conversation, "message": message}
    async with client.stream("POST", url, json=body) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [event async for event in sse(response)]


async def test_a_reply_streams_as_deltas_and_lands_in_a_web_session(
    receiver: str,
    world: World,
    fake_openai: FakeOpenAI,
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    url = f"{receiver}/api/chat/{world.builder}"
    async with httpx.AsyncClient(headers=world.headers("builder"), timeout=30) as client:
        first = await chat(client, url, "try-1", "What time is it?")
        second = await chat(client, url, "try-1", "Thanks, that is all I needed")
        listing = (
            await client.get(f"{receiver}/api/builders/{world.builder}/sessions?q=try-1")
        ).json()
        [session] = listing["sessions"]
        stored = (await client.get(f"{receiver}/api/sessions/{session['id']}/items")).json()

    kinds = [event for event, _ in first]
    assert kinds[:2] == ["tool_call", "tool_output"] and kinds[-1] == "done"
    assert first[0][1]["name"] == "current_time"
    tool_output = first[1][1]["output"]
    deltas = [data["text"] for event, data in first if event == "delta"]
    assert len(deltas) > 1  # word by word, as the model streamed it
    assert "".join(deltas) == first[-1][1]["reply"] == f"The time is {tool_output}."
    assert second[-1][1]["reply"] == "You said: Thanks, that is all I needed"
    assert len([event for event, _ in second if event == "delta"]) == 8

    assert (session["platform"], session["user"], session["item_count"]) == ("web", "try-1", 6)
    assert [kind(item["item"]) for item in stored["items"]] == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
        "user",
        "assistant",
    ]
    # The runner loaded the first turn from the session for the second one.
    assert len(fake_openai.requests[-1]["input"]) == 5


async def test_a_second_request_on_a_busy_conversation_gets_409(
    receiver: str, world: World, fake_openai: FakeOpenAI
) -> None:
    fake_openai.delay_seconds = 1.0
    url = f"{receiver}/api/chat/{world.builder}"
    async with httpx.AsyncClient(headers=world.headers("builder"), timeout=30) as client:
        first = asyncio.create_task(chat(client, url, "busy", "first"))
        await eventually(lambda: _requested(fake_openai), what="the first run to reach the model")
        second = await client.post(url, json={"conversation_id": "busy", "message": "second"})
        elsewhere = await client.post(
            url, json={"conversation_id": "not-busy", "message": "hi", "stream": False}
        )
        events = await first
        after = await client.post(
            url, json={"conversation_id": "busy", "message": "third", "stream": False}
        )
    assert second.status_code == 409
    assert second.json() == {"error": "conversation 'busy' is answering another message"}
    assert elsewhere.status_code == 200 and elsewhere.json()["reply"] == "You said: hi"
    assert events[-1] == (
        "done",
        {"session_id": events[-1][1]["session_id"], "reply": "You said: first"},
    )
    assert after.status_code == 200 and after.json()["reply"] == "You said: third"


async def _requested(fake: FakeOpenAI) -> bool:
    return bool(fake.requests)


async def test_a_client_that_leaves_mid_stream_leaves_a_whole_history(
    receiver: str,
    world: World,
    fake_openai: FakeOpenAI,
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    fake_openai.delta_delay_seconds = 0.1
    url = f"{receiver}/api/chat/{world.builder}"
    long_message = "please repeat these twelve words back to me right now thank you"
    async with httpx.AsyncClient(headers=world.headers("builder"), timeout=30) as client:
        body = {"conversation_id": "leaver", "message": long_message}
        async with client.stream("POST", url, json=body) as response:
            async for event, _ in sse(response):
                if event == "delta":
                    break  # the browser tab closes

        async def released() -> bool:
            async with db_sessions() as db:
                session = await db.scalar(
                    select(AgentSessionRow).where(AgentSessionRow.external_id == "leaver")
                )
            return session is not None and session.lease_token is None

        await eventually(released, what="the abandoned turn to finish")
        fake_openai.delta_delay_seconds = 0
        follow_up = await client.post(
            url, json={"conversation_id": "leaver", "message": "and now?", "stream": False}
        )
    assert follow_up.status_code == 200
    history = fake_openai.requests[-1]["input"]
    assert [kind(item) for item in history] == ["user", "assistant", "user"]
    assert history[1]["content"][0]["text"] == f"You said: {long_message}"


async def test_bad_chat_requests_get_clear_errors(receiver: str, world: World) -> None:
    url = f"{receiver}/api/chat/{world.builder}"
    cases = [
        (b"not json", 400, "the body must be JSON"),
        (b"[1]", 400, 'the body must be a JSON object {"conversation_id", "message"}'),
        (
            json.dumps({"conversation_id": "a b", "message": "x"}).encode(),
            400,
            "conversation_id must be 1-120 characters of letters, digits and . _ : -",
        ),
        (
            json.dumps({"conversation_id": "ok", "message": " "}).encode(),
            400,
            "message must be a non-empty string",
        ),
        (
            json.dumps({"conversation_id": "ok", "message": "x" * 8001}).encode(),
            413,
            "message is longer than 8000 characters",
        ),
        (b"x" * 70_000, 413, "request body exceeds 65536 bytes"),
    ]
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        for body, status, error in cases:
            response = await client.post(url, content=body)
            assert (response.status_code, response.json()) == (status, {"error": error})


async def test_a_paused_web_conversation_is_not_answered(
    receiver: str, world: World, fake_openai: FakeOpenAI
) -> None:
    url = f"{receiver}/api/chat/{world.builder}"
    async with httpx.AsyncClient(headers=world.headers("builder"), timeout=30) as client:
        body = {"conversation_id": "held", "message": "hello", "stream": False}
        first = (await client.post(url, json=body)).json()
        paused = await client.post(f"{receiver}/sessions/{first['session_id']}/pause")
        assert paused.status_code == 303
        refused = await client.post(url, json=body)
    assert (refused.status_code, refused.json()) == (
        409,
        {"error": "conversation 'held' is paused"},
    )
    assert len(fake_openai.requests) == 1


async def test_web_chat_turns_are_counted_on_the_receivers_metrics(
    world: World, fake_openai: FakeOpenAI, make_receiver: Callable[..., str]
) -> None:
    metered = make_receiver(METRICS_TOKEN=TOKEN)
    url = f"{metered}/api/chat/{world.builder}"
    replied = ("wabot_turns_total", labels(platform="web", outcome="replied"))
    failed = ("wabot_turns_total", labels(platform="web", outcome="failed"))
    model_runs = ("wabot_model_run_seconds_count", labels(platform="web"))
    tokens = {
        direction: (
            "wabot_model_tokens_total",
            labels(builder=str(world.builder), platform="web", direction=direction),
        )
        for direction in ("input", "output")
    }
    async with httpx.AsyncClient(headers=world.headers("builder"), timeout=30) as client:
        before = await scrape(client, metered)
        answered = await chat(client, url, "counted", "Hello")
        fake_openai.failures.append(Failure(400))
        refused = await chat(client, url, "counted", "Hello again")
        after = await scrape(client, metered)

    assert [answered[-1][0], refused[-1][0]] == ["done", "error"]
    moved = {
        key: after.get(key, 0.0) - before.get(key, 0.0)
        for key in (replied, failed, model_runs, *tokens.values())
    }
    # The fake Responses API reports 10 input and 5 output tokens per call.
    assert moved == {
        replied: 1,
        failed: 1,
        model_runs: 2,
        tokens["input"]: 10,
        tokens["output"]: 5,
    }


async def test_two_racing_requests_on_the_embedded_sqlite_get_one_answer_and_one_409(
    sqlite_url: str, fake_openai: FakeOpenAI, make_receiver: Callable[..., str]
) -> None:
    engine = create_engine(sqlite_url)
    try:
        sessions = create_sessionmaker(engine)
        builder = await builder_with_channel(
            sessions, address=f"whatsapp:+1415{uuid.uuid4().int % 10**7:07d}"
        )
        token = await builder_token(sessions, builder)
    finally:
        await engine.dispose()
    embedded = make_receiver(DATABASE_URL=sqlite_url)
    fake_openai.delay_seconds = 1.0
    body = {"conversation_id": "race", "message": "hello", "stream": False}
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        answers = await asyncio.gather(
            *(client.post(f"{embedded}/api/chat/{builder}", json=body) for _ in range(2))
        )
    assert sorted(answer.status_code for answer in answers) == [200, 409]
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert refused.json() == {"error": "conversation 'race' is answering another message"}
