"""Retrying a failed turn (the dashboard's *retry*, `wabot retry`) answers the same
messages as the same turn: the user's message stays stored once, the fallback the user
already got is neither reused nor sent again, and a worker killed mid-retry doubles
nothing. The real receiver, dashboard, workers, `wabot` and Postgres."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Turn
from db.transcript import content_text
from tests.conftest import Wabot, start_worker
from tests.factories import builder_token, builder_with_channel, post_signed, twilio_form
from tests.fakes.openai import Failure, FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, all_items, inbound_messages, kind, turns
from tests.waiting import at_least, eventually
from worker.conversation.turn_runner import DEFAULT_FALLBACK_REPLY

ANSWER = "You said: Order bread"


async def history(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    """The conversation's stored items as (kind, text)."""
    return [(kind(item), content_text(item.get("content"))) for item in await all_items(sessions)]


async def latest_turn(sessions: async_sessionmaker[AsyncSession], status: str) -> Turn | None:
    """The conversation's latest turn, once it is `status`."""
    started = await turns(sessions)
    return started[-1] if started and started[-1].status == status else None


async def retry_from_the_dashboard(
    client: httpx.AsyncClient, session_id: uuid.UUID, turn_id: uuid.UUID
) -> str:
    response = await client.post(f"/sessions/{session_id}/turns/{turn_id}/retry")
    assert response.status_code == 303, response.text
    return str(httpx.URL(response.headers["location"]).params["notice"])


async def test_a_turn_failed_then_retried_twice_holds_its_message_once_and_one_answer(
    wabot: Wabot,
    service_env: dict[str, str],
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    """Fails for good (the user gets the fallback), is retried from the dashboard and
    fails again (no second fallback), is retried with `wabot retry` and replies: still
    one turn, its attempts counted afresh for each retry."""
    broker = {key: service_env[key] for key in ("CELERY_BROKER_URL", "CELERY_QUEUE")}
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    fake_openai.failures.append(Failure(400))
    async with httpx.AsyncClient(
        base_url=live_receiver, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        form = twilio_form("Order bread")
        assert (await post_signed(client, f"{live_receiver}/webhooks/twilio", form)).is_success
        failed = await eventually(lambda: latest_turn(db_sessions, "failed"), what="a failed turn")
        assert [m["Body"] for m in fake_twilio.messages] == [DEFAULT_FALLBACK_REPLY]

        fake_openai.failures.append(Failure(400))
        notice = await retry_from_the_dashboard(client, failed.session_id, failed.id)
        assert notice == "Retrying: 1 message(s) handed back to the bot."
        await at_least(fake_openai.requests, 2, what="the first retry's model call")
        await eventually(lambda: latest_turn(db_sessions, "failed"), what="it to fail again")

        retried = wabot("retry", str(failed.session_id), env=broker)
        assert retried.returncode == 0, retried.stderr
        replied = await eventually(lambda: latest_turn(db_sessions, "replied"), what="the answer")
        page = (await client.get(f"/sessions/{failed.session_id}")).text

    assert await history(db_sessions) == [
        ("user", "Order bread"),
        ("assistant", DEFAULT_FALLBACK_REPLY),
        ("assistant", ANSWER),
    ]
    assert [m["Body"] for m in fake_twilio.messages] == [DEFAULT_FALLBACK_REPLY, ANSWER]
    model_saw = fake_openai.requests[-1]["input"]  # the conversation as it stood, not the fallback
    assert [(kind(item), content_text(item["content"])) for item in model_saw] == [
        ("user", "Order bread")
    ]
    assert (replied.id, replied.attempts, replied.retries) == (failed.id, 1, 2)
    assert [m.status for m in await inbound_messages(db_sessions)] == ["processed"]
    assert page.count('<div class="text">Order bread</div>') == 1
    assert "Turn failed" not in page


@pytest.mark.slow
async def test_a_worker_killed_mid_retry_doubles_nothing(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    env, receiver = private_queue(
        CELERY_VISIBILITY_TIMEOUT="5", RUN_TIMEOUT_SECONDS="4", CONVERSATION_LEASE_SECONDS="6"
    )
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    fake_openai.failures.append(Failure(400))
    doomed = start_worker(env, tmp_path / "doomed.log", concurrency=2)
    async with httpx.AsyncClient(
        base_url=receiver, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        form = twilio_form("Order bread")
        assert (await post_signed(client, f"{receiver}/webhooks/twilio", form)).is_success
        failed = await eventually(lambda: latest_turn(db_sessions, "failed"), what="a failed turn")
        fake_openai.delay_seconds = 60  # the retry's model call, which its worker dies in
        await retry_from_the_dashboard(client, failed.session_id, failed.id)
        await at_least(fake_openai.requests, 2, what="the retry's model call")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)

    fake_openai.delay_seconds = 0
    survivor = start_worker(env, tmp_path / "survivor.log", concurrency=2)
    try:
        await eventually(lambda: latest_turn(db_sessions, "replied"), within=45, what="the answer")
    finally:
        survivor.terminate()
        survivor.wait(timeout=30)

    assert await history(db_sessions) == [
        ("user", "Order bread"),
        ("assistant", DEFAULT_FALLBACK_REPLY),
        ("assistant", ANSWER),
    ]
    assert [m["Body"] for m in fake_twilio.messages] == [DEFAULT_FALLBACK_REPLY, ANSWER]
    [turn] = await turns(db_sessions)
    assert (turn.id, turn.attempts, turn.retries) == (failed.id, 2, 1)


async def test_retried_turns_of_one_conversation_each_answer_their_own_message(
    wabot: Wabot,
    service_env: dict[str, str],
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    """Two turns of a conversation failed, one after the other; `wabot retry --all`
    answers each as the conversation stood when its message arrived."""
    broker = {key: service_env[key] for key in ("CELERY_BROKER_URL", "CELERY_QUEUE")}
    await builder_with_channel(db_sessions)
    async with httpx.AsyncClient() as client:
        for number, text in enumerate(("Order bread", "Order cake"), start=1):
            fake_openai.failures.append(Failure(400))
            form = twilio_form(text)
            assert (await post_signed(client, f"{live_receiver}/webhooks/twilio", form)).is_success
            await at_least(fake_twilio.messages, number, what="fallback replies")
            await eventually(lambda: latest_turn(db_sessions, "failed"), what="a failed turn")

    retried = wabot("retry", "--all", env=broker)
    assert retried.stdout.strip() == (
        "retrying 2 failed turn(s): 2 message(s) handed back in 1 conversation(s)"
    )
    await at_least(fake_twilio.messages, 4, what="the answers")
    await eventually(lambda: all_answered(db_sessions), what="both turns to reply")

    assert await history(db_sessions) == [
        ("user", "Order bread"),
        ("assistant", DEFAULT_FALLBACK_REPLY),
        ("user", "Order cake"),
        ("assistant", DEFAULT_FALLBACK_REPLY),
        ("assistant", ANSWER),
        ("assistant", "You said: Order cake"),
    ]
    assert [m["Body"] for m in fake_twilio.messages][2:] == [ANSWER, "You said: Order cake"]
    assert [turn.status for turn in await turns(db_sessions)] == ["replied", "replied"]
