"""The naive worker design the worker rows compare against, as it is commonly written:
a Celery prefork worker whose task runs `asyncio.run(Runner.run(...))`, building a new
engine, `SQLAlchemySession` and OpenAI client every time, so each process carries one
conversation at a time and pays the set-up on every message.

Run by the bench: `celery -A bench.naive_worker worker --pool prefork
--concurrency 2`, configured by the same variables as ours (DATABASE_URL,
CELERY_BROKER_URL, CELERY_QUEUE, OPENAI_*, TWILIO_*).
"""

from __future__ import annotations

import asyncio
import os
from functools import cache
from urllib.parse import urlsplit

from agents import Agent, OpenAIResponsesModel, Runner, set_tracing_disabled
from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
from celery import Celery
from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import create_async_engine
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from worker.agent.builder_agent import WHATSAPP_STYLE, current_time

NAIVE_TASK = "bench.naive.reply"
INSTRUCTIONS = f"You help customers of a bakery.\n\n{WHATSAPP_STYLE}"
MODEL = "gpt-test"

set_tracing_disabled(True)

app = Celery("naive", broker=os.environ.get("CELERY_BROKER_URL"))
app.conf.update(
    task_default_queue=os.environ.get("CELERY_QUEUE", "naive"),
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
)


class _ApiHostClient(TwilioHttpClient):
    """twilio's pooled `requests` client sending to `TWILIO_API_BASE_URL` instead, the
    way our Twilio channel is pointed at the fake."""

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> Response:
        parts = urlsplit(url)
        url = os.environ["TWILIO_API_BASE_URL"] + parts.path
        return super().request(method, url, *args, **kwargs)  # type: ignore[arg-type]


@cache
def _twilio() -> Client:
    """One pooled Twilio client per process, made on first use."""
    return Client(
        os.environ["TWILIO_ACCOUNT_SID"],
        os.environ["TWILIO_AUTH_TOKEN"],
        http_client=_ApiHostClient(timeout=10),
    )


@app.task(name=NAIVE_TASK)
def reply(sender: str, recipient: str, text: str, conversation_key: str) -> None:
    """Answer one WhatsApp message from `sender` to our number `recipient`."""
    answer = asyncio.run(_answer(text, conversation_key))
    _twilio().messages.create(from_=recipient, to=sender, body=answer)


async def _answer(text: str, conversation_key: str) -> str:
    engine = create_async_engine(os.environ["DATABASE_URL"])
    client = AsyncOpenAI(
        api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["OPENAI_BASE_URL"]
    )
    try:
        agent = Agent(
            name="Test Bakery",
            instructions=INSTRUCTIONS,
            model=OpenAIResponsesModel(model=MODEL, openai_client=client),
            tools=[current_time],
        )
        session = SQLAlchemySession(conversation_key, engine=engine)
        result = await Runner.run(agent, text, session=session)
        return str(result.final_output)
    finally:
        await client.close()
        await engine.dispose()
