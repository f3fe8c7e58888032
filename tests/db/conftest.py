"""Fixtures of the database tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.engine import create_engine, create_sessionmaker


@pytest.fixture
async def sqlite_engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated SQLite file (the embedded demo's database)."""
    engine = create_engine(sqlite_url)
    yield engine
    await engine.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
async def sessions(
    request: pytest.FixtureRequest,
    db_sessions: async_sessionmaker[AsyncSession],
    sqlite_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Postgres (emptied), or the embedded SQLite file every test of the process shares
    (each test makes its own builders and reads only their rows)."""
    if request.param == "postgres":
        yield db_sessions
        return
    engine = create_engine(sqlite_url)
    yield create_sessionmaker(engine)
    await engine.dispose()
