"""Fault injection: a worker killed with SIGKILL in the middle of a run, or between the
provider taking its reply and the worker recording so, loses nothing and doubles nothing
once the broker hands its task to another worker (Redis after its visibility timeout,
RabbitMQ as soon as the dead worker's connection closes)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.brokers import RabbitMQServer
from tests.conftest import start_worker
from tests.crash import killed_after_the_provider_took
from tests.factories import (
    META_PHONE_NUMBER_ID,
    builder_with_channel,
    meta_notification,
    meta_text_message,
    post_meta,
    post_signed,
    twilio_form,
)
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import free_port
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_items, kind, outbound_messages, turns
from tests.services import RABBITMQ_URL, REDIS_URL
from tests.waiting import at_least

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("broker_url", [REDIS_URL, RABBITMQ_URL], ids=["redis", "rabbitmq"])
async def test_a_killed_worker_s_message_is_answered_once_after_redelivery(
    broker_url: str,
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    # Short timeouts so redelivery and lease expiry happen within the test.
    env, receiver = private_queue(
        CELERY_BROKER_URL=broker_url,
        CELERY_VISIBILITY_TIMEOUT="5",
        RUN_TIMEOUT_SECONDS="4",
        CONVERSATION_LEASE_SECONDS="6",
    )
    await builder_with_channel(db_sessions)
    fake_openai.delay_seconds = 60  # the model call the first worker will die in
    doomed = start_worker(env, tmp_path / "doomed.log", concurrency=2)

    async with httpx.AsyncClient() as client:
        response = await post_signed(client, f"{receiver}/webhooks/twilio", twilio_form("Hello"))
    assert response.status_code == 200

    await at_least(fake_openai.requests, 1, what="model calls (the first worker's)")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    assert [kind(item) for item in await all_items(db_sessions)] == ["user"]

    fake_openai.delay_seconds = 0
    survivor = start_worker(env, tmp_path / "survivor.log", concurrency=2)
    try:
        await at_least(
            fake_twilio.messages, 1, within=45, what="replies to the redelivered message"
        )
    finally:
        survivor.terminate()
        survivor.wait(timeout=30)

    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hello"]
    assert [kind(item) for item in await all_items(db_sessions)] == ["user", "assistant"]
    [turn] = await turns(db_sessions)
    assert (turn.status, turn.attempts) == ("replied", 2)
    assert [kind(item) for item in fake_openai.requests[-1]["input"]] == ["user"]


@pytest.mark.parametrize("provider", ["twilio", "meta"])
async def test_a_worker_killed_after_the_provider_took_its_reply_does_not_send_it_again(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
    tmp_path: Path,
    provider: str,
) -> None:
    env, receiver = private_queue(
        CELERY_VISIBILITY_TIMEOUT="5",
        RUN_TIMEOUT_SECONDS="4",
        CONVERSATION_LEASE_SECONDS="6",
        META_STATUS_WAIT_SECONDS="2",
    )
    fake = fake_twilio if provider == "twilio" else fake_graph
    fake.hold_after_accept_seconds = 60  # the provider takes the reply, then the worker dies
    fake_graph.status_webhooks_to = receiver  # Meta reports what it took, as it does
    doomed = start_worker(env, tmp_path / "doomed.log", concurrency=2)
    async with httpx.AsyncClient() as client:
        if provider == "twilio":
            await builder_with_channel(db_sessions)
            response = await post_signed(client, f"{receiver}/webhooks/twilio", twilio_form("Hi"))
        else:
            await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
            body = meta_notification([meta_text_message("Hi")])
            response = await post_meta(client, f"{receiver}/webhooks/meta", body)
    assert response.status_code == 200

    taken = await killed_after_the_provider_took(
        doomed, fake, env=env, tmp_path=tmp_path, db_sessions=db_sessions
    )

    assert fake.messages == [taken]
    [reply] = await outbound_messages(db_sessions)
    assert reply.provider_message_id == taken.get("sid", taken.get("id"))
    assert [kind(item) for item in await all_items(db_sessions)] == ["user", "assistant"]


async def test_sigterm_lets_the_running_turn_finish_before_the_worker_exits(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    env, receiver = private_queue()
    await builder_with_channel(db_sessions)
    fake_openai.delay_seconds = 2
    stopping = start_worker(env, tmp_path / "stopping.log", concurrency=2)
    async with httpx.AsyncClient() as client:
        await post_signed(client, f"{receiver}/webhooks/twilio", twilio_form("Hello"))

    await at_least(fake_openai.requests, 1, what="model calls")
    stopping.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(stopping.wait, 30) == 0
    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hello"]
    assert [kind(item) for item in await all_items(db_sessions)] == ["user", "assistant"]


async def test_a_message_accepted_while_the_broker_was_down_is_swept_and_answered(
    db_sessions: async_sessionmaker[AsyncSession],
    make_receiver: Callable[..., str],
    service_env: dict[str, str],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    queue = f"wabot-sweep-{uuid.uuid4().hex[:8]}"
    broker_down = make_receiver(
        CELERY_QUEUE=queue, CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    await builder_with_channel(db_sessions)
    async with httpx.AsyncClient(timeout=30) as client:
        response = await post_signed(client, f"{broker_down}/webhooks/twilio", twilio_form("Hi"))
    assert response.status_code == 200
    env = {
        **service_env,
        "CELERY_QUEUE": queue,
        "SWEEP_INTERVAL_SECONDS": "1",
        "SWEEP_STALE_SECONDS": "1",
    }
    sweeper = start_worker(env, tmp_path / "sweeper.log", concurrency=2)
    try:
        await at_least(fake_twilio.messages, 1, within=30, what="replies to the swept message")
    finally:
        sweeper.terminate()
        sweeper.wait(timeout=30)
    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hi"]


async def test_a_rabbitmq_blocking_publishers_holds_no_webhook_past_the_publish_deadline(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    """In a memory alarm RabbitMQ stops reading what publishers send, so a publish waits
    for a confirm that does not come: the webhook is answered anyway (the message is in
    the inbox), and once the alarm is over the message is delivered and answered."""
    rabbitmq = RabbitMQServer(tmp_path)
    rabbitmq.start()
    try:
        env, receiver = private_queue(CELERY_BROKER_URL=rabbitmq.url)
        await builder_with_channel(db_sessions)
        rabbitmq.ctl("set_vm_memory_high_watermark", "0")
        async with httpx.AsyncClient(timeout=30) as client:
            response = await post_signed(client, f"{receiver}/webhooks/twilio", twilio_form("Hi"))
        assert response.status_code == 200
        rabbitmq.ctl("set_vm_memory_high_watermark", "0.4")
        worker = start_worker(env, tmp_path / "worker.log", concurrency=2)
        try:
            await at_least(fake_twilio.messages, 1, within=30, what="replies once unblocked")
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    finally:
        rabbitmq.stop()
    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hi"]


async def test_a_turn_still_running_after_the_grace_period_is_handed_back(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    env, receiver = private_queue(
        WORKER_SHUTDOWN_GRACE_SECONDS="1", RUN_TIMEOUT_SECONDS="20", CONVERSATION_LEASE_SECONDS="30"
    )
    await builder_with_channel(db_sessions)
    fake_openai.delay_seconds = 15  # longer than the grace period
    stopping = start_worker(env, tmp_path / "stopping.log", concurrency=2)
    async with httpx.AsyncClient() as client:
        await post_signed(client, f"{receiver}/webhooks/twilio", twilio_form("Hello"))

    await at_least(fake_openai.requests, 1, what="model calls")
    stopping.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert await asyncio.to_thread(stopping.wait, 10) == 0
    assert time.monotonic() - started < 8, "the worker waited past its grace period"
    assert fake_twilio.messages == []

    fake_openai.delay_seconds = 0
    successor = start_worker(env, tmp_path / "successor.log", concurrency=2)
    try:
        await at_least(fake_twilio.messages, 1, within=30, what="replies to the handed-back turn")
    finally:
        successor.terminate()
        successor.wait(timeout=30)
    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hello"]
    assert [kind(item) for item in await all_items(db_sessions)] == ["user", "assistant"]
