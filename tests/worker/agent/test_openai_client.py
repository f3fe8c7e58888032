"""`WorkerOpenAI` must put on the wire exactly what the stock `AsyncOpenAI` does."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from agents import Agent, ModelSettings, OpenAIResponsesModel, Runner, function_tool
from agents.items import TResponseInputItem
from openai import AsyncOpenAI
from openai.types.shared import Reasoning

from tests.fakes.openai import FakeOpenAI, function_call, message
from worker.agent.openai_client import WorkerOpenAI

HISTORY: list[TResponseInputItem] = [
    {"role": "user", "content": "Hi, I'm Ana"},
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Hello Ana!", "annotations": []}],
    },
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is on this photo?"},
            {"type": "input_image", "image_url": "https://example.com/a.jpg", "detail": "auto"},
        ],
    },
    {
        "type": "function_call",
        "id": "fc_2",
        "call_id": "call_2",
        "name": "current_time",
        "arguments": '{"timezone": "UTC"}',
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_2", "output": "Monday 09:00 UTC"},
    {"role": "user", "content": "What time is it now?"},
]


@function_tool
def opening_hours(day: str = "today") -> str:
    """When the shop is open.

    Args:
        day: A weekday, or "today".
    """
    return f"{day}: 9:00-17:00"


def deterministic_model(request: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool call, then an answer from its output, with the same ids in every run."""
    last = request["input"][-1]
    if last.get("type") == "function_call_output":
        return [{**message(f"Open {last['output']}."), "id": "msg_answer"}]
    call = function_call("opening_hours", {"day": "Monday"})
    return [{**call, "id": "fc_hours", "call_id": "call_hours"}]


async def bodies_sent(client: AsyncOpenAI, fake: FakeOpenAI) -> list[dict[str, Any]]:
    """The request bodies of one tool-using run over `HISTORY` through `client`."""
    fake.requests.clear()
    fake.respond = deterministic_model
    agent = Agent(
        name="shop",
        instructions="Answer briefly.",
        model=OpenAIResponsesModel(model="gpt-test", openai_client=client),
        model_settings=ModelSettings(
            temperature=0.3,
            max_tokens=200,
            metadata={"builder": "shop"},
            reasoning=Reasoning(effort="low"),
            extra_body={"user": "hashed-user"},
            extra_headers={"x-trace": "1"},
        ),
        tools=[opening_hours],
    )
    result = await Runner.run(agent, list(HISTORY))
    assert result.final_output == "Open Monday: 9:00-17:00."
    return [json.loads(json.dumps(body)) for body in fake.requests]


async def test_the_worker_client_sends_the_same_requests_as_the_stock_client(
    fake_openai_server: tuple[FakeOpenAI, str],
) -> None:
    fake, base_url = fake_openai_server
    fake.reset()
    options: dict[str, Any] = {"api_key": "sk-test", "base_url": f"{base_url}/v1"}
    async with AsyncOpenAI(**options) as stock, WorkerOpenAI(**options) as ours:
        expected = await bodies_sent(stock, fake)
        sent = await bodies_sent(ours, fake)

    assert len(expected) == 2  # the tool call, then the answer from its output
    assert sent == expected
    assert sent[0]["user"] == "hashed-user"
    assert sent[0]["input"][: len(HISTORY)] == json.loads(json.dumps(HISTORY))


async def test_the_worker_client_fails_like_the_stock_client(
    fake_openai_server: tuple[FakeOpenAI, str],
) -> None:
    """openai-python's own retries and errors still apply: 401 is raised, not retried."""
    _fake, base_url = fake_openai_server
    async with WorkerOpenAI(api_key="sk-wrong", base_url=f"{base_url}/v1", max_retries=3) as client:
        agent = Agent(name="shop", model=OpenAIResponsesModel(model="m", openai_client=client))
        with pytest.raises(openai.AuthenticationError):
            await Runner.run(agent, "hello")
