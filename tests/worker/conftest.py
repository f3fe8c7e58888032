"""Fixtures shared by the worker tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.core.settings import Settings
from db.models import Channel
from tests.factories import BOT_NUMBER, META_PHONE_NUMBER_ID, builder_with_channel, channel_at
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from worker.process.runtime import Runtime, create_runtime


@pytest.fixture
async def runtime(
    settings: Settings,
    db_sessions: async_sessionmaker[AsyncSession],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
) -> AsyncIterator[Runtime]:
    """A worker's runtime in this process, wired to freshly reset fake providers."""
    runtime = create_runtime(settings)
    yield runtime
    await runtime.aclose()


@pytest.fixture
async def runtime_with(settings: Settings) -> AsyncIterator[Callable[..., Runtime]]:
    """Make runtimes with settings overridden (`runtime_with(run_timeout_seconds=0.5)`);
    each is closed after the test."""
    made: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        made.append(create_runtime(settings.model_copy(update=overrides)))
        return made[-1]

    yield make
    for each in made:
        await each.aclose()


@pytest.fixture
async def channel(db_sessions: async_sessionmaker[AsyncSession]) -> Channel:
    """A builder's Twilio number the test messages arrive on."""
    await builder_with_channel(db_sessions)
    return await channel_at(db_sessions, BOT_NUMBER)


@pytest.fixture
async def meta_channel(db_sessions: async_sessionmaker[AsyncSession]) -> Channel:
    """A builder's Meta phone number id, with a canned reply for unreadable messages."""
    await builder_with_channel(
        db_sessions,
        provider="meta",
        address=META_PHONE_NUMBER_ID,
        unsupported_reply="I can only read text, photos and locations.",
    )
    return await channel_at(db_sessions, META_PHONE_NUMBER_ID, "meta")
