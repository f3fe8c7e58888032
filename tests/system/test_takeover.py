"""Ops take over a WhatsApp conversation from the dashboard while the real worker runs:
pause (messages are stored, not answered), reply as a human (sent through Twilio and
stored for the agent, after what waited), resume (what waited is answered, or kept as
context only), retry a failed turn, clear (the transcript archived)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AgentSessionRow, InboundMessage, Turn
from db.transcript import content_text
from tests.factories import builder_token, builder_with_channel, post_signed, twilio_form
from tests.fakes.openai import Failure, FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, kind
from tests.waiting import at_least, eventually


@pytest.fixture(autouse=True)
async def worker_settles(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    async with db_sessions.begin() as db:  # a paused conversation would wait forever
        for session in await db.scalars(select(AgentSessionRow)):
            session.paused_at = None
    await eventually(lambda: all_answered(db_sessions), what="the worker to finish its turns")


async def test_pause_reply_resume_retry_and_clear(
    celery_worker: Path,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    async with httpx.AsyncClient(
        base_url=live_receiver, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:

        async def whatsapp(text: str) -> None:
            form = twilio_form(text)
            assert (
                await post_signed(client, f"{live_receiver}/webhooks/twilio", form)
            ).status_code == 200

        async def act(action: str, **form: str) -> str:
            response = await client.post(f"/sessions/{session_id}/{action}", data=form)
            assert response.status_code == 303, response.text
            return str(httpx.URL(response.headers["location"]).params["notice"])

        await whatsapp("Hi there")
        await at_least(fake_twilio.messages, 1, what="the bot's first reply")
        async with db_sessions() as db:
            session_id = await db.scalar(select(AgentSessionRow.id))

        assert await act("pause") == "Bot paused: new messages are stored but not answered."
        await whatsapp("Is anyone there?")

        def waiting_for(text: str) -> Callable[[], Awaitable[bool]]:
            async def waiting() -> bool:
                async with db_sessions() as db:
                    message = await db.scalar(
                        select(InboundMessage).where(InboundMessage.text == text)
                    )
                    session = await db.get(AgentSessionRow, session_id)
                assert session is not None
                return (
                    message is not None
                    and message.session_id == session_id
                    and message.status == "pending"
                    and session.lease_token is None
                )

            return waiting

        await eventually(
            waiting_for("Is anyone there?"),
            what="the worker to leave the paused conversation alone",
        )
        assert len(fake_twilio.messages) == 1 and len(fake_openai.requests) == 1

        notice = await act("reply", text="Hi, this is **Sam** from the bakery.")
        assert notice == "Reply sent and stored."
        human = fake_twilio.messages[1]
        assert (human["Body"], human["To"]) == (
            "Hi, this is *Sam* from the bakery.",
            "whatsapp:+31612345678",
        )
        page = (await client.get(f"/sessions/{session_id}")).text
        assert "sent by a human" in page and "paused" in page

        # The human answered what waited: it is in the history, before the reply.
        items = (await client.get(f"/api/sessions/{session_id}/items")).json()["items"]
        assert [item["text"] for item in items[-2:]] == [
            "Is anyone there?",
            "Hi, this is **Sam** from the bakery.",
        ]
        await whatsapp("Still there?")  # arrives after the reply, before the resume
        await eventually(waiting_for("Still there?"), what="the second message to wait")
        refused = await client.post(f"/sessions/{session_id}/resume", data={"answer": "all"})
        assert (refused.status_code, "answer must be" in refused.text) == (400, True)
        assert await act("resume", answer="waiting") == (
            "Bot resumed; answering 1 waiting message(s)."
        )
        sent = await at_least(fake_twilio.messages, 3, what="the answer to what waited")
        assert sent[2]["Body"] == "You said: Still there?"
        assert len(fake_openai.requests) == 2  # never asked to answer "Is anyone there?"
        model_saw = fake_openai.requests[-1]["input"]
        assert [kind(item) for item in model_saw] == [
            "user",
            "assistant",
            "user",
            "assistant",
            "user",
        ]
        assert content_text(model_saw[3]["content"]) == "Hi, this is **Sam** from the bakery."

        await eventually(lambda: all_answered(db_sessions), what="the answer to finish")
        assert await act("pause")
        await whatsapp("Only context")
        await eventually(waiting_for("Only context"), what="the third message to wait")
        assert await act("resume", answer="next") == (
            "Bot resumed; 1 waiting message(s) kept in the conversation unanswered; the bot "
            "answers what comes next."
        )
        await whatsapp("And now?")
        sent = await at_least(fake_twilio.messages, 4, what="the answer to what came next")
        assert sent[3]["Body"] == "You said: And now?"
        assert content_text(fake_openai.requests[-1]["input"][-2]["content"]) == "Only context"
        assert len(fake_openai.requests) == 3

        fake_openai.failures.append(Failure(400))
        await whatsapp("Order bread")
        await at_least(fake_twilio.messages, 5, what="the fallback reply")

        async def failed_turn() -> uuid.UUID | None:
            async with db_sessions() as db:
                return await db.scalar(select(Turn.id).where(Turn.status == "failed"))

        turn_id = await eventually(failed_turn, what="the turn to fail")
        page = (await client.get(f"/sessions/{session_id}")).text
        assert re.search(r"Turn failed: model API 400", page)
        assert f"/turns/{turn_id}/retry" in page
        notice = await act(f"turns/{turn_id}/retry")
        assert notice == "Retrying: 1 message(s) handed back to the bot."
        sent = await at_least(fake_twilio.messages, 6, what="the retried turn's reply")
        assert sent[5]["Body"] == "You said: Order bread"
        assert (
            await client.post(f"/sessions/{session_id}/turns/{turn_id}/retry")
        ).status_code == 409

        await eventually(lambda: all_answered(db_sessions), what="the retried turn to finish")
        refused = await client.post(f"/sessions/{session_id}/clear", data={})
        assert refused.status_code == 400
        assert await act("clear", confirm="yes") == (
            "Memory cleared: the agent starts this conversation afresh. The transcript is "
            'archived on this page, under "Earlier, cleared on …".'
        )
        items = (await client.get(f"/api/sessions/{session_id}/items")).json()
        assert items["items"] == [] and items["session"]["item_count"] == 0
        page = (await client.get(f"/sessions/{session_id}")).text
        assert "Earlier, cleared on" in page and "Order bread" in page
