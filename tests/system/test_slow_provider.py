"""A provider slow to answer a send does not cost the conversation its lease: the worker
keeps renewing it, so the next message's task finds the conversation busy instead of
taking it over and sending the reply in flight a second time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import start_worker
from tests.factories import (
    META_PHONE_NUMBER_ID,
    builder_with_channel,
    meta_notification,
    meta_text_message,
    post_meta,
)
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.queries import all_answered
from tests.waiting import at_least, eventually

pytestmark = pytest.mark.slow

LEASE_SECONDS = 4.0


async def test_a_reply_the_provider_holds_past_the_lease_is_sent_once(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
    tmp_path: Path,
) -> None:
    env, receiver = private_queue(
        RUN_TIMEOUT_SECONDS="1",
        CONVERSATION_LEASE_SECONDS=str(LEASE_SECONDS),
        META_STATUS_WAIT_SECONDS="1",
        CELERY_VISIBILITY_TIMEOUT="60",
    )
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    fake_graph.hold_after_accept_seconds = 60  # Meta took the reply and is slow to say so
    worker = start_worker(env, tmp_path / "worker.log", concurrency=2)
    try:
        async with httpx.AsyncClient() as client:

            async def user_says(text: str) -> None:
                body = meta_notification([meta_text_message(text)])
                response = await post_meta(client, f"{receiver}/webhooks/meta", body)
                assert response.status_code == 200

            async def reply_held() -> bool:
                return fake_graph.held.holding > 0

            await user_says("first")
            await eventually(reply_held, what="the first reply taken and held")
            await asyncio.sleep(LEASE_SECONDS + 1)  # past the lease as it was taken
            await user_says("second")
            # Taken over, the second message's task would look for a status of the reply
            # in flight for a second, find none, and send it again now.
            await asyncio.sleep(3)
            fake_graph.hold_after_accept_seconds = 0
            await at_least(fake_graph.messages, 2, what="replies")
            await eventually(lambda: all_answered(db_sessions), what="both messages answered")
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    assert [sent["text"]["body"] for sent in fake_graph.messages] == [
        "You said: first",
        "You said: second",
    ]
    assert "taken over" not in (tmp_path / "worker.log").read_text()
