"""Fixtures shared by the worker tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.settings import Settings
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from worker.runtime import Runtime, create_runtime


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
