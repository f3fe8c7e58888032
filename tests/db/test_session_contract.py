"""`DatabaseSession` stores whatever the SDK's own `SQLiteSession` stores and gives it
back identical, on Postgres and on SQLite: strings with U+0000 or a lone surrogate,
NaN and Infinity, floats JSONB would turn into integers, the lossless form's own marker.
It also takes its settings and refuses what JSON cannot hold as the SDK's sessions do,
and can be used from several event loops at once."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import SQLiteSession
from agents.memory import SessionSettings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.agent_session import DatabaseSession
from db.dashboard_queries import items_page
from db.engine import create_sessionmaker
from db.lossless_json import plain_text
from db.statements import StatementConnections
from db.transcript import transcript_line
from tests.db.test_agent_session import new_session_id

UNUSUAL: list[dict[str, Any]] = [
    {"role": "user", "content": "a NUL \x00 in a message"},
    {"type": "function_call_output", "call_id": "c1", "output": "page 1\x00page 2"},
    {"role": "assistant", "content": "a lone \ud800 surrogate and a lone \udc00 one"},
    {"type": "numbers", "values": [math.nan, math.inf, -math.inf, -0.0, 1e16, 1e300, 5e-324]},
    {"type": "key\x00with NUL", "\ud83d": "a lone surrogate as a key"},
    {"type": "marker", "wabot:json": "not our encoding", "nested": {"wabot:json": "1"}},
    {"role": "user", "content": [{"type": "input_text", "text": "e+ -0.0 NaN Infinity"}]},
    {"role": "user", "content": 10**40},
]


def same_items(ours: Any, theirs: Any) -> bool:
    """Equal as the SDK would see them (NaN equals itself here; 1e16 is not 10**16)."""
    return json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)


@pytest.fixture
async def statements(database_url: str) -> AsyncIterator[StatementConnections]:
    connections = StatementConnections(database_url, size=2)
    yield connections
    await connections.aclose()


@pytest.fixture(params=["postgres", "postgres statements", "sqlite"])
def new_session(
    request: pytest.FixtureRequest,
    db_sessions: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    sqlite_engine: AsyncEngine,
    statements: StatementConnections,
) -> Any:
    """Makes `DatabaseSession`s on fresh `sessions` rows: on Postgres through the engine,
    on Postgres through persistent connections (as workers use it), on SQLite."""
    backend = sqlite_engine if request.param == "sqlite" else engine
    sessions = create_sessionmaker(backend) if request.param == "sqlite" else db_sessions
    connections = statements if request.param == "postgres statements" else None

    async def make(**options: Any) -> DatabaseSession:
        session_id = await new_session_id(sessions)
        return DatabaseSession(session_id, engine=backend, statements=connections, **options)

    return make


async def observed(session: Any, items: list[dict[str, Any]]) -> list[Any]:
    """What a caller sees of `items` through a session: the whole history, a window,
    the item popped, and what is left."""
    await session.add_items(items[:2])
    await session.add_items(items[2:])
    return [
        await session.get_items(),
        await session.get_items(limit=2),
        await session.pop_item(),
        await session.get_items(),
    ]


async def sqlite_session_sees(items: list[dict[str, Any]]) -> list[Any]:
    reference = SQLiteSession(uuid.uuid4().hex)
    try:
        return await observed(reference, items)
    finally:
        reference.close()


async def test_unusual_items_come_back_as_the_sdk_sqlite_session_gives_them(
    new_session: Any,
) -> None:
    expected = await sqlite_session_sees(UNUSUAL)
    assert same_items(await observed(await new_session(), UNUSUAL), expected)
    assert same_items(expected[0], UNUSUAL)


text = st.text(st.characters(exclude_categories=())) | st.sampled_from(
    ["\x00", "\ud800", "wabot:json", "e+", "-0.0"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3),
    max_leaves=10,
)
items = st.lists(
    st.dictionaries(text, json_values, max_size=4).map(lambda item: {"role": "user", **item}),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(items=items)
async def test_any_items_the_sdk_sqlite_session_stores_come_back_the_same(
    new_session: Any, items: list[dict[str, Any]]
) -> None:
    expected = await sqlite_session_sees(items)
    assert same_items(await observed(await new_session(), items), expected)


async def test_the_dashboard_and_transcripts_read_the_items_as_stored(
    db_sessions: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    session_id = await new_session_id(db_sessions)
    await DatabaseSession(session_id, engine=engine).add_items(UNUSUAL)
    async with db_sessions() as db:
        page, _more = await items_page(session_id, db=db)
    assert same_items([item.item_data for item in page], UNUSUAL)
    line = transcript_line(page[1].item_data)
    assert line.text == "→ " + plain_text("page 1\x00page 2")


async def test_settings_given_as_a_dict_are_normalised_and_checked(new_session: Any) -> None:
    session = await new_session(session_settings={"limit": 2})
    assert session.session_settings == SessionSettings(limit=2)
    await session.add_items([{"role": "user", "content": str(n)} for n in range(4)])
    assert [item["content"] for item in await session.get_items()] == ["2", "3"]
    with pytest.raises(TypeError, match="Unknown session settings: limitt"):
        await new_session(session_settings={"limitt": 1})
    with pytest.raises(TypeError, match="Unknown session settings: limitt"):
        SQLiteSession("reference", session_settings={"limitt": 1})


async def test_an_item_json_cannot_hold_is_a_type_error_and_stores_nothing(
    new_session: Any,
) -> None:
    session = await new_session()
    with pytest.raises(TypeError):
        await session.add_items([{"role": "user", "content": "fine"}, {"content": object()}])
    assert await session.get_items() == []


async def test_one_session_serves_several_event_loops_at_once(new_session: Any) -> None:
    """Threads each running `asyncio.run` with the same session (as the SDK's own
    sessions allow), beside this test's loop: none fails, none hangs."""
    session = await new_session()
    await session.add_items([{"role": "user", "content": "from the test's loop"}])
    start = threading.Barrier(3)
    failures: list[BaseException] = []

    def in_a_loop_of_its_own(name: str) -> None:
        async def use() -> None:
            start.wait()
            for n in range(3):
                await asyncio.wait_for(
                    session.add_items([{"role": "user", "content": f"{name} {n}"}]), timeout=20
                )
                await asyncio.wait_for(session.get_items(limit=2), timeout=20)

        try:
            asyncio.run(use())
        except BaseException as error:
            failures.append(error)

    threads = [
        threading.Thread(target=in_a_loop_of_its_own, args=(name,)) for name in ("one", "two")
    ]
    for thread in threads:
        thread.start()
    await asyncio.to_thread(start.wait)
    await session.add_items([{"role": "user", "content": "again from the test's loop"}])
    for thread in threads:
        await asyncio.to_thread(thread.join, 60)
    assert not any(thread.is_alive() for thread in threads), "a loop hung"
    assert failures == []
    contents = sorted(item["content"] for item in await session.get_items())
    assert contents == sorted(
        ["from the test's loop", "again from the test's loop"]
        + [f"{name} {n}" for name in ("one", "two") for n in range(3)]
    )
