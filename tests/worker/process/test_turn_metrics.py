"""The worker's metrics: a turn processed in-process moves its outcome, latency, send
and token counters (`platform="whatsapp"`); a `wabot worker` process serves its own on
WORKER_METRICS_PORT."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel
from db.core.settings import Settings
from db.models import Channel
from tests.conftest import start_worker
from tests.factories import BOT_NUMBER, builder_with_channel, post_signed, twilio_form
from tests.fakes.openai import Failure, FakeOpenAI
from tests.fakes.server import free_port
from tests.fakes.twilio import FakeTwilio
from tests.waiting import at_least, eventually
from tests.worker.conversation.test_turns import arrive
from worker.conversation.inbound import RetryLater, process_inbound
from worker.process.runtime import Runtime

TOKEN = "metrics-token-0123456789"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def snapshot(builder_id: uuid.UUID) -> dict[str, float]:
    """This process's WhatsApp turn metrics (the in-process worker's)."""
    on_whatsapp = {"platform": "whatsapp"}
    tokens = {"builder": str(builder_id), **on_whatsapp}
    return {
        "replied": sample("wabot_turns_total", outcome="replied", **on_whatsapp),
        "retried": sample("wabot_turns_total", outcome="retried", **on_whatsapp),
        "failed": sample("wabot_turns_total", outcome="failed", **on_whatsapp),
        "turn_seconds": sample("wabot_turn_seconds_count", **on_whatsapp),
        "model_seconds": sample("wabot_model_run_seconds_count", **on_whatsapp),
        "sent": sample("wabot_sends_total", provider="twilio", status="sent"),
        "input_tokens": sample("wabot_model_tokens_total", direction="input", **tokens),
        "output_tokens": sample("wabot_model_tokens_total", direction="output", **tokens),
    }


def moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before if after[name] != before[name]}


async def builder_channel(sessions: async_sessionmaker[AsyncSession]) -> tuple[uuid.UUID, Channel]:
    builder_id = await builder_with_channel(sessions)
    async with sessions() as db:
        channel = await find_channel("twilio", BOT_NUMBER, db=db)
    assert channel is not None
    return builder_id, channel


async def test_a_replied_turn_is_counted_with_its_sends_and_tokens(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime, fake_twilio: FakeTwilio
) -> None:
    builder_id, channel = await builder_channel(db_sessions)
    before = snapshot(builder_id)
    await process_inbound(await arrive(db_sessions, channel, "Hello"), runtime=runtime)
    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hello"]
    # The fake Responses API reports 10 input and 5 output tokens per call.
    assert moved(before, snapshot(builder_id)) == {
        "replied": 1,
        "turn_seconds": 1,
        "model_seconds": 1,
        "sent": 1,
        "input_tokens": 10,
        "output_tokens": 5,
    }


async def test_a_retried_then_replied_turn_is_counted_once_each(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime, fake_openai: FakeOpenAI
) -> None:
    builder_id, channel = await builder_channel(db_sessions)
    inbound_id = await arrive(db_sessions, channel, "Hello")
    before = snapshot(builder_id)
    fake_openai.failures.append(Failure(503))
    with pytest.raises(RetryLater):
        await process_inbound(inbound_id, runtime=runtime)
    await process_inbound(inbound_id, runtime=runtime)
    changes = moved(before, snapshot(builder_id))
    assert (changes["retried"], changes["replied"], changes["turn_seconds"]) == (1, 1, 2)
    assert "failed" not in changes


async def test_a_worker_process_serves_its_metrics_to_the_token_holder(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    port = free_port()
    env, receiver = private_queue(WORKER_METRICS_PORT=str(port), METRICS_TOKEN=TOKEN)
    builder_id = await builder_with_channel(db_sessions)
    worker = start_worker(env, tmp_path / "worker.log", concurrency=2)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with httpx.AsyncClient() as client:
            refused = await client.get(url, headers={"Authorization": "Bearer wrong-token"})
            assert refused.status_code == 401
            assert "wabot_" not in refused.text
            response = await post_signed(client, f"{receiver}/webhooks/twilio", twilio_form("Hi"))
            assert response.status_code == 200
            await at_least(fake_twilio.messages, 1, what="replies")

            async def turns_counted() -> dict[tuple[str, str], float] | None:
                scraped = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
                assert scraped.status_code == 200
                samples = {
                    (
                        s.name,
                        s.labels.get("platform", ""),
                        s.labels.get("outcome") or s.labels.get("direction", ""),
                    ): s.value
                    for family in text_string_to_metric_families(scraped.text)
                    for s in family.samples
                    if s.labels.get("builder", str(builder_id)) == str(builder_id)
                }
                return (
                    samples if samples.get(("wabot_turns_total", "whatsapp", "replied")) else None
                )

            samples = await eventually(turns_counted, what="the worker to count its turn")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert samples[("wabot_turns_total", "whatsapp", "replied")] == 1
    assert samples[("wabot_model_tokens_total", "whatsapp", "input")] == 10


def test_a_worker_metrics_port_needs_a_token(service_env: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="WORKER_METRICS_PORT needs METRICS_TOKEN"):
        Settings(_env_file=None, **{**service_env, "WORKER_METRICS_PORT": "9100"})
