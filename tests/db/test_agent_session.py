"""`DatabaseSession` honours the SDK `Session` contract: the same operations give the
same results as the SDK's own `SQLiteSession`, on Postgres and on SQLite."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
from agents import SQLiteSession
from agents.memory import SessionSettings
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.agent_session import DatabaseSession, SessionNotFoundError
from db.builders import create_builder
from db.engine import create_sessionmaker
from db.models import AgentSessionRow, SessionItem
from db.sessions import get_or_create_session

ITEMS: list[dict[str, Any]] = [
    {"role": "user", "content": "Hoi! Do you deliver to Utrecht? 🚲"},
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "delivery_zones",
        "arguments": '{"city": "Utrecht"}',
    },
    {"type": "function_call_output", "call_id": "call_1", "output": '{"zones": ["3511", "3512"]}'},
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": "Yes, we do.", "annotations": []}],
    },
    {
        "role": "user",
        "content": [{"type": "input_text", "text": 'Great, nested: {"a": [1, null]}'}],
    },
]


async def new_session_id(sessions: async_sessionmaker[AsyncSession]) -> uuid.UUID:
    async with sessions.begin() as db:
        builder = await create_builder(name="b", instructions="i", model="m", db=db)
        return await get_or_create_session(builder.id, "test", uuid.uuid4().hex, db=db)


@pytest.fixture(params=["postgres", "sqlite"])
async def database_session(
    request: pytest.FixtureRequest,
    db_sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sqlite_engine: AsyncEngine,
) -> DatabaseSession:
    """A `DatabaseSession` on a fresh `sessions` row, on each backend."""
    backend = engine if request.param == "postgres" else sqlite_engine
    sessions = db_sessions if request.param == "postgres" else create_sessionmaker(backend)
    return DatabaseSession(await new_session_id(sessions), engine=backend)


async def apply(session: Any, operations: list[tuple[Any, ...]]) -> list[Any]:
    """Run operations on a session and collect every observable result."""
    results: list[Any] = []
    for operation, *args in operations:
        if operation == "add":
            results.append(await session.add_items([dict(item) for item in args[0]]))
        elif operation == "get":
            results.append(await session.get_items(*args))
        elif operation == "pop":
            results.append(await session.pop_item())
        elif operation == "clear":
            results.append(await session.clear_session())
    results.append(await session.get_items())
    return results


SCRIPTED = [
    [("get",), ("pop",), ("get", 3)],
    [("add", ITEMS[:1]), ("add", ITEMS[1:4]), ("get",), ("get", 2), ("get", 0), ("get", 10)],
    [("add", ITEMS), ("pop",), ("pop",), ("get", 2), ("add", ITEMS[:2]), ("get",)],
    [("add", ITEMS), ("clear",), ("get",), ("pop",), ("add", ITEMS[3:]), ("get", 1)],
    [("add", []), ("add", ITEMS[2:3]), ("get", -1), ("pop",), ("pop",)],
]


def random_operations(seed: int, count: int = 60) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    operations: list[tuple[Any, ...]] = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.45:
            operations.append(("add", rng.sample(ITEMS, rng.randint(0, len(ITEMS)))))
        elif roll < 0.75:
            operations.append(("get", rng.choice([None, 0, 1, 2, 5, 50])))
        elif roll < 0.95:
            operations.append(("pop",))
        else:
            operations.append(("clear",))
    return operations


@pytest.mark.parametrize(
    "operations",
    SCRIPTED + [random_operations(seed) for seed in range(3)],
    ids=[f"scripted-{n}" for n in range(len(SCRIPTED))] + [f"random-{n}" for n in range(3)],
)
async def test_same_results_as_the_sdk_sqlite_session(
    database_session: DatabaseSession, operations: list[tuple[Any, ...]]
) -> None:
    reference = SQLiteSession(uuid.uuid4().hex)
    try:
        expected = await apply(reference, operations)
    finally:
        reference.close()
    assert await apply(database_session, operations) == expected


async def test_items_are_stored_untouched_one_row_each_in_sequence(
    database_session: DatabaseSession,
) -> None:
    await database_session.add_items(ITEMS[:2])
    await database_session.add_items(ITEMS[2:])
    engine = database_session._engine
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(SessionItem.sequence, SessionItem.item_data)
                .where(SessionItem.session_id == uuid.UUID(database_session.session_id))
                .order_by(SessionItem.sequence)
            )
        ).all()
    assert [row.sequence for row in rows] == list(range(len(ITEMS)))
    assert [row.item_data for row in rows] == ITEMS


async def test_session_settings_limit_is_the_default_window(
    database_session: DatabaseSession,
) -> None:
    database_session.session_settings = SessionSettings(limit=2)
    await database_session.add_items(ITEMS)
    assert await database_session.get_items() == ITEMS[-2:]
    assert await database_session.get_items(limit=3) == ITEMS[-3:]


async def test_a_window_can_start_at_its_first_user_message(
    database_session: DatabaseSession,
) -> None:
    """A window of the latest 3 would open with the tool result, whose call it lacks;
    from its first user message it is the last message alone. The whole history and a
    window without a user message are left whole."""
    trimming = DatabaseSession(
        database_session.session_id,
        engine=database_session._engine,
        window_from_user_message=True,
    )
    await trimming.add_items(ITEMS)
    assert await trimming.get_items(limit=3) == ITEMS[-1:]
    assert await trimming.get_items(limit=4) == ITEMS[-1:]
    assert await trimming.get_items(limit=5) == ITEMS
    assert await trimming.get_items() == ITEMS
    await trimming.add_items(ITEMS[1:4])
    assert await trimming.get_items(limit=2) == ITEMS[2:4]
    assert await database_session.get_items(limit=3) == ITEMS[1:4]


async def test_add_items_bumps_the_sessions_updated_at(
    db_sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    session_id = await new_session_id(db_sessions)
    async with db_sessions() as db:
        before = await db.scalar(
            select(AgentSessionRow.updated_at).where(AgentSessionRow.id == session_id)
        )
    await asyncio.sleep(0.01)
    await DatabaseSession(session_id, engine=engine).add_items(ITEMS[:1])
    async with db_sessions() as db:
        after = await db.scalar(
            select(AgentSessionRow.updated_at).where(AgentSessionRow.id == session_id)
        )
    assert before is not None and after is not None and after > before


async def test_concurrent_add_items_get_contiguous_sequences(
    db_sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    session_id = await new_session_id(db_sessions)
    batches = [
        [{"role": "user", "content": f"writer {writer} item {n}"} for n in range(writer % 3 + 1)]
        for writer in range(20)
    ]
    await asyncio.gather(
        *(DatabaseSession(session_id, engine=engine).add_items(batch) for batch in batches)
    )
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(SessionItem.sequence, SessionItem.item_data)
                .where(SessionItem.session_id == session_id)
                .order_by(SessionItem.sequence)
            )
        ).all()
    total = sum(len(batch) for batch in batches)
    assert [row.sequence for row in rows] == list(range(total))
    stored = [row.item_data for row in rows]
    for batch in batches:
        start = stored.index(batch[0])
        assert stored[start : start + len(batch)] == batch, "a batch was interleaved"


async def test_a_missing_session_row_is_a_clear_error(engine: AsyncEngine) -> None:
    session = DatabaseSession(uuid.uuid4(), engine=engine)
    with pytest.raises(SessionNotFoundError, match="does not exist"):
        await session.add_items(ITEMS[:1])
    assert await session.get_items() == []
