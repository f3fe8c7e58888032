"""The Procfile's `web` and `dashboard` run apart, as a deployment runs them: the webhook
process takes providers' messages and serves no dashboard; the dashboard process answers
the web chat on a runtime of its own and takes no webhooks; each serves its own metrics.
`wabot serve --only` runs either the same way."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import builder_token, builder_with_channel, post_signed, twilio_form
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import free_port
from tests.webhooks.test_receiver_metrics import TOKEN, scrape
from tests.webhooks.test_slow_clients import procfile_command, started


@pytest.fixture(scope="module")
def procfile(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """`web` and `dashboard` started from the Procfile, with metrics on; what `web`
    enqueues goes to a queue no worker reads. Yields each one's base URL."""
    logs = tmp_path_factory.mktemp("procfile")
    env = {
        **service_env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "METRICS_TOKEN": TOKEN,
        "CELERY_QUEUE": f"wabot-idle-{uuid.uuid4().hex[:8]}",
    }
    with ExitStack() as stack:
        urls = {}
        for name in ("web", "dashboard"):
            port = free_port()
            command = ["sh", "-c", procfile_command(name)]
            process_env = {**env, "PORT": str(port)}
            urls[name] = stack.enter_context(
                started(command, process_env, port, logs / f"{name}.log")
            )
        yield urls


def labels(**pairs: str) -> frozenset[tuple[str, str]]:
    return frozenset(pairs.items())


async def test_the_web_process_takes_webhooks_and_serves_no_dashboard(
    procfile: dict[str, str], db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await builder_with_channel(db_sessions)
    web = procfile["web"]
    async with httpx.AsyncClient(timeout=30) as client:
        accepted = await post_signed(client, f"{web}/webhooks/twilio", twilio_form("Hello"))
        sign_in = await client.get(f"{web}/login")
        samples = await scrape(client, web)
    assert accepted.status_code == 200
    assert sign_in.status_code == 404
    webhook = labels(provider="twilio", webhook="message", outcome="accepted")
    assert samples[("wabot_webhooks_total", webhook)] == 1
    assert samples[("wabot_inbox_waiting_messages", labels())] == 1


async def test_the_dashboard_process_answers_the_web_chat_and_counts_it(
    procfile: dict[str, str],
    db_sessions: async_sessionmaker[AsyncSession],
    fake_openai: FakeOpenAI,
) -> None:
    builder = await builder_with_channel(db_sessions)
    dashboard = procfile["dashboard"]
    signed_in = {"Authorization": f"Bearer {await builder_token(db_sessions, builder)}"}
    body = {"conversation_id": "apart", "message": "Hello", "stream": False}
    async with httpx.AsyncClient(timeout=30) as client:
        answered = await client.post(
            f"{dashboard}/api/chat/{builder}", json=body, headers=signed_in
        )
        webhook = await post_signed(client, f"{dashboard}/webhooks/twilio", twilio_form("Hi"))
        samples = await scrape(client, dashboard)
    assert answered.status_code == 200
    assert answered.json()["reply"] == "You said: Hello"
    assert webhook.status_code == 401  # the dashboard's sign-in: no webhook route here
    assert samples[("wabot_turns_total", labels(platform="web", outcome="replied"))] == 1
    names = {name for name, _ in samples}
    assert not names & {"wabot_webhooks_total", "wabot_inbox_waiting_messages"}


def test_wabot_serve_only_serves_one_of_them(service_env: dict[str, str], tmp_path: Path) -> None:
    """`wabot serve --only webhooks|dashboard` runs what the Procfile's `web` and
    `dashboard` run, where a platform starts processes through the CLI."""
    env = {**service_env, "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    handshake = {
        "hub.mode": "subscribe",
        "hub.verify_token": service_env["META_VERIFY_TOKEN"],
        "hub.challenge": "42",
    }
    answers = {}
    for only in ("webhooks", "dashboard"):
        port = free_port()
        command = [sys.executable, "-m", "worker.cli", "serve", "--port", str(port)]
        with started([*command, "--only", only], env, port, tmp_path / f"{only}.log") as url:
            answers[only] = (
                httpx.get(f"{url}/webhooks/meta", params=handshake, timeout=10).status_code,
                httpx.get(f"{url}/login", timeout=10).status_code,
            )
    assert answers == {"webhooks": (200, 404), "dashboard": (401, 200)}
