"""The promise under fire.

2,000 signed webhooks over 200 conversations (half Twilio, half Meta) go through the real
receiver, a broker this test owns (Redis or RabbitMQ), two Celery workers and Postgres, while:
workers are SIGKILLed mid-turn twice, the broker is stopped for 5 s, the workers' database
connections are terminated, the model answers 500 (10%), 429 with Retry-After (5%) or
hangs past the run deadline (1%), the providers answer 429 to 5% of sends, and 10% of
webhooks are delivered twice, some concurrently. Then, for every accepted message: it
was answered exactly once as the user sees it, stored once, in order, in its own
conversation, with contiguous sequences.

The fake providers keep what they took the way the real ones do (Twilio's Messages
list; Meta posts signed `sent`/`delivered` statuses carrying our outbound id back to the
receiver), so a worker killed after the provider took a reply and before it recorded so
finds the reply there on the retry instead of sending it again. Identical repeats of one
reply in a conversation that had a turn running when a worker was killed are counted
apart (`resent_after_kill`) and must be none; any other repeat is a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import subprocess
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InboundMessage, SessionItem, Turn
from tests.brokers import PrivateBroker, RabbitMQServer, RedisServer
from tests.conftest import start_worker
from tests.factories import (
    BOT_NUMBER,
    META_PHONE_NUMBER_ID,
    builder_with_channel,
    meta_notification,
    meta_signature,
    meta_text_message,
    sign,
    twilio_form,
)
from tests.fakes.meta import Failure as GraphFailure
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import Failure, FakeOpenAI, message
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, kind
from tests.services import terminate_connections
from tests.waiting import eventually

pytestmark = pytest.mark.slow

CONVERSATIONS = 200
MESSAGES_EACH = 10
CONCURRENT_CONVERSATIONS = 40
WORKER_CONCURRENCY = 16
PROVIDER_LATENCY_SECONDS = 0.15
"""How long the fake providers take to answer a send they took, as real APIs do."""
FIRST_MODEL_FAULTS = {2: "model_500", 5: "model_429", 8: "model_hang"}
"""Model calls that fail for sure, each kind once among the first few, however the
workers' calls interleave; the rest fail at random (bursts coalesce into one turn, so
the model is called far fewer times than messages are sent: a 1% hang missed every
call of a run, which then proved nothing about it)."""
WORKER_APP_NAME = f"wabot-fault-worker-{uuid.uuid4().hex[:8]}"
"""Unique per run, so terminating this run's connections never touches another run's."""


@pytest.fixture(params=["redis", "rabbitmq"])
def private_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrivateBroker]:
    """A broker of this test's own, so it can be stopped and restarted mid-run."""
    folder = tmp_path / request.param
    folder.mkdir()
    server = RedisServer(folder) if request.param == "redis" else RabbitMQServer(folder)
    server.start()
    yield server
    if server.process and server.process.poll() is None:
        server.stop()


def echo_what_it_answers(request: dict[str, Any]) -> list[dict[str, Any]]:
    """A model that names every user message it answers, so the test can tell which
    messages each reply covered."""
    answered: list[str] = []
    for item in reversed(request["input"]):
        if kind(item) == "assistant":
            break
        if kind(item) == "user":
            answered.insert(0, item["content"])
    return [message("answered: " + ", ".join(answered))]


async def test_the_promise_holds_under_faults(
    db_sessions: async_sessionmaker[AsyncSession],
    database_url: str,
    private_queue: Callable[..., tuple[dict[str, str], str]],
    private_broker: PrivateBroker,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
    tmp_path: Path,
) -> None:
    rng = random.Random(2026)
    faults: Counter[str] = Counter()
    env, receiver = private_queue(
        CELERY_BROKER_URL=private_broker.url,
        CELERY_VISIBILITY_TIMEOUT="8",
        RUN_TIMEOUT_SECONDS="3",
        CONVERSATION_LEASE_SECONDS="6",
        OPENAI_MAX_RETRIES="1",
        TURN_MAX_ATTEMPTS="20",
        RETRY_BACKOFF_SECONDS="0.2",
        SWEEP_INTERVAL_SECONDS="2",
        SWEEP_STALE_SECONDS="6",
        SENDER_TURNS_PER_MINUTE="0",
        META_STATUS_WAIT_SECONDS="3",
        # Straight to Postgres, not through the suite's PgBouncer: terminating the
        # workers' connections must reach the workers.
        DATABASE_URL=database_url,
        DATABASE_POOLER="none",
        PGAPPNAME=WORKER_APP_NAME,
    )
    await builder_with_channel(db_sessions)
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)

    model_calls = itertools.count(1)

    def model_fault() -> str | None:
        call = next(model_calls)
        roll = rng.random()
        if call <= max(FIRST_MODEL_FAULTS):
            return FIRST_MODEL_FAULTS.get(call)
        if roll < 0.10:
            return "model_500"
        if roll < 0.15:
            return "model_429"
        return "model_hang" if roll < 0.16 else None

    def model_chaos() -> Failure | float | None:
        fault = model_fault()
        if fault is not None:
            faults[fault] += 1
        if fault == "model_500":
            return Failure(500)
        if fault == "model_429":
            return Failure(429, headers={"Retry-After": "1"})
        return 5.0 if fault == "model_hang" else None

    def twilio_chaos() -> tuple[int, int] | None:
        if rng.random() < 0.05:
            faults["send_429"] += 1
            return (429, 20429)
        return None

    def graph_chaos() -> GraphFailure | None:
        if rng.random() < 0.05:
            faults["send_429"] += 1
            return GraphFailure(429, 130429)
        return None

    fake_openai.respond = echo_what_it_answers
    fake_openai.chaos = model_chaos
    fake_twilio.chaos = twilio_chaos
    fake_graph.chaos = graph_chaos
    fake_graph.status_webhooks_to = receiver
    providers = (fake_twilio, fake_graph)
    for provider in providers:
        provider.hold_after_accept_seconds = PROVIDER_LATENCY_SECONDS

    logs = tmp_path / "workers"
    logs.mkdir()
    workers = [
        start_worker(env, logs / f"worker-{n}.log", concurrency=WORKER_CONCURRENCY)
        for n in range(2)
    ]
    sent: dict[int, list[str]] = {}
    try:
        load = asyncio.create_task(send_all(receiver, rng, faults, sent))
        interrupted = await inject_faults(
            db_sessions, workers, env, logs, private_broker, faults, providers
        )
        await load

        with contextlib.suppress(AssertionError):  # judged below, message by message
            await eventually(
                partial(all_answered, db_sessions), within=120, what="every message answered"
            )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)

    faults["send_taken_unheard"] = sum(len(provider.held.unheard) for provider in providers)
    verdict = await judge(db_sessions, sent, fake_twilio, fake_graph, interrupted)
    resent = verdict.pop("resent_after_kill")
    summary = " ".join(f"{name}={count}" for name, count in verdict.items())
    injected = ",".join(f"{name}:{count}" for name, count in sorted(faults.items()))
    print(f"\n{summary} resent_after_kill={resent} faults={injected}")  # noqa: T201
    assert verdict == {
        "messages": CONVERSATIONS * MESSAGES_EACH,
        "lost": 0,
        "duplicate_replies": 0,
        "duplicate_items": 0,
        "out_of_order": 0,
    }
    assert resent == 0, f"{resent} replies sent again after a worker was killed"
    for fault in (
        "worker_kill",
        "broker_restart",
        "pg_terminate",
        "model_500",
        "model_429",
        "model_hang",
        "send_429",
        "send_taken_unheard",
        "duplicate_webhook",
    ):
        assert faults[fault] > 0, f"{fault} was never injected"


async def send_all(
    receiver: str, rng: random.Random, faults: Counter[str], sent: dict[int, list[str]]
) -> None:
    """Every conversation sends its messages in order, each delivered like a provider
    does: retried until a 2xx, sometimes twice."""
    gate = asyncio.Semaphore(CONCURRENT_CONVERSATIONS)
    plans = {n: [rng.random() for _ in range(MESSAGES_EACH)] for n in range(CONVERSATIONS)}

    async def deliver(
        client: httpx.AsyncClient, url: str, content: bytes, headers: dict[str, str]
    ) -> None:
        while True:
            try:
                response = await client.post(url, content=content, headers=headers)
                if response.status_code == 200:
                    return
                assert response.status_code >= 500, response.text
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)

    async def converse(client: httpx.AsyncClient, n: int) -> None:
        async with gate:
            sent[n] = []
            for index, roll in enumerate(plans[n]):
                text = f"c{n}m{index}"
                url, content, headers = signed_delivery(receiver, n, text)
                if roll < 0.05:
                    faults["duplicate_webhook"] += 1
                    await asyncio.gather(
                        *(deliver(client, url, content, headers) for _ in range(2))
                    )
                elif roll < 0.10:
                    faults["duplicate_webhook"] += 1
                    await deliver(client, url, content, headers)
                    await deliver(client, url, content, headers)
                else:
                    await deliver(client, url, content, headers)
                sent[n].append(text)
                await asyncio.sleep(rng.uniform(0, 0.05))

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(converse(client, n) for n in range(CONVERSATIONS)))


def signed_delivery(receiver: str, n: int, text: str) -> tuple[str, bytes, dict[str, str]]:
    """Conversation `n` speaks Twilio when even, Meta when odd."""
    if n % 2 == 0:
        url = f"{receiver}/webhooks/twilio"
        form = twilio_form(text, sid=f"SM{text}", sender=f"whatsapp:+1555{n:07d}", to=BOT_NUMBER)
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(url, form),
        }
        return url, urlencode(form).encode(), headers
    wa_id = f"1666{n:07d}"
    body = meta_notification(
        [meta_text_message(text, wamid=f"wamid.{text}", wa_id=wa_id)], wa_id=wa_id
    )
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": meta_signature(body)}
    return f"{receiver}/webhooks/meta", body, headers


async def inject_faults(
    sessions: async_sessionmaker[AsyncSession],
    workers: list[subprocess.Popen[bytes]],
    env: dict[str, str],
    logs: Path,
    broker: PrivateBroker,
    faults: Counter[str],
    providers: tuple[FakeTwilio, FakeGraphAPI],
) -> set[uuid.UUID]:
    """Inject the faults; returns the sessions that had a turn running when a worker
    was killed (read after the kill: the dead worker's turns stay `running`). The second
    kill comes after the providers took sends of the killed worker and before they
    answered: every answer is held until more are held than one worker sends at once."""
    interrupted: set[uuid.UUID] = set()

    async def running_sessions() -> set[uuid.UUID]:
        async with sessions() as db:
            return set(await db.scalars(select(Turn.session_id).where(Turn.status == "running")))

    async def mid_turn() -> bool:
        async with sessions() as db:
            running = await db.scalar(
                select(func.count()).select_from(Turn).where(Turn.status == "running")
            )
        return bool(running)

    async def sends_of_both_workers_held() -> bool:
        return sum(provider.held.holding for provider in providers) > WORKER_CONCURRENCY

    async def kill_a_worker(index: int, when: Callable[[], Awaitable[bool]], what: str) -> None:
        await eventually(when, within=60, what=what)
        os.killpg(workers[index].pid, signal.SIGKILL)
        workers[index].wait(timeout=10)
        for provider in providers:
            provider.hold_after_accept_seconds = PROVIDER_LATENCY_SECONDS
        interrupted.update(await running_sessions())
        faults["worker_kill"] += 1
        workers[index] = await asyncio.to_thread(
            start_worker,
            env,
            logs / f"worker-{index}-after-kill.log",
            concurrency=WORKER_CONCURRENCY,
        )

    await asyncio.sleep(1)
    await kill_a_worker(0, mid_turn, "a turn in progress")
    await asyncio.sleep(1)
    broker.stop()
    faults["broker_restart"] += 1
    await asyncio.sleep(5)
    broker.start()
    await asyncio.sleep(1)
    faults["pg_terminate"] += await asyncio.to_thread(terminate_connections, WORKER_APP_NAME)
    for provider in providers:
        provider.hold_after_accept_seconds = 60
    await kill_a_worker(1, sends_of_both_workers_held, "sends of both workers held")
    return interrupted


def message_ids(n: int, texts: list[str]) -> list[str]:
    """The provider message ids conversation `n` sent `texts` under (see signed_delivery)."""
    return [f"SM{text}" if n % 2 == 0 else f"wamid.{text}" for text in texts]


async def judge(
    sessions: async_sessionmaker[AsyncSession],
    sent: dict[int, list[str]],
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
    interrupted: set[uuid.UUID],
) -> dict[str, int]:
    """Check the promise for every message sent; count each way it was broken."""
    async with sessions() as db:
        inbox = {row.provider_message_id: row for row in await db.scalars(select(InboundMessage))}
        items: dict[Any, list[SessionItem]] = defaultdict(list)
        for item in await db.scalars(select(SessionItem).order_by(SessionItem.sequence)):
            items[item.session_id].append(item)

    # Replies by conversation: the recipient's last 7 digits are its number `n`.
    replies_to: dict[int, list[str]] = defaultdict(list)
    for delivered in fake_twilio.messages:
        replies_to[int(delivered["To"][-7:])].append(delivered["Body"])
    for delivered in fake_graph.messages:
        replies_to[int(delivered["to"][-7:])].append(delivered["text"]["body"])
    answered_in: Counter[str] = Counter()
    resent_after_kill = 0
    for n, bodies in replies_to.items():
        rows = [inbox.get(message_id) for message_id in message_ids(n, sent[n])]
        if any(row is not None and row.session_id in interrupted for row in rows):
            repeats = Counter(bodies)
            resent_after_kill += sum(count - 1 for count in repeats.values())
            bodies = list(repeats)  # an identical resend answers nothing new
        for body in bodies:
            answered_in.update(body.removeprefix("answered: ").split(", "))

    lost = duplicate_items = out_of_order = 0
    for n, texts in sent.items():
        rows = [inbox.get(message_id) for message_id in message_ids(n, texts)]
        lost += sum(
            1
            for row, text in zip(rows, texts, strict=True)
            if row is None or row.status != "processed" or answered_in[text] == 0
        )
        session_ids = {row.session_id for row in rows if row is not None}
        stored = [item for session_id in session_ids for item in items.get(session_id, [])]
        user_texts = [
            item.item_data["content"] for item in stored if kind(item.item_data) == "user"
        ]
        duplicate_items += len(user_texts) - len(set(user_texts))
        contiguous = [item.sequence for item in stored] == list(range(len(stored)))
        if len(session_ids) != 1 or user_texts != texts or not contiguous:
            out_of_order += 1
    duplicate_replies = sum(count - 1 for count in answered_in.values() if count > 1)
    return {
        "messages": sum(len(texts) for texts in sent.values()),
        "lost": lost,
        "duplicate_replies": duplicate_replies,
        "duplicate_items": duplicate_items,
        "out_of_order": out_of_order,
        "resent_after_kill": resent_after_kill,
    }
