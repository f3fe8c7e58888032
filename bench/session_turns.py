"""Row 1: what a turn costs the session (`get_items(limit=50)` + `add_items` of the four
items a tool-using turn stores) against the SDK's `SQLAlchemySession` on the same
Postgres and against a raw-psycopg floor, with deep histories and under concurrency."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.report import Row
from db.agent_session import DatabaseSession
from db.builders import create_builder
from db.engine import create_engine, create_sessionmaker
from db.sessions import get_or_create_session
from db.statements import StatementConnections

WINDOW = 50
TURN: list[dict[str, Any]] = [
    {"role": "user", "content": "Do you have gluten-free sourdough this Saturday? 🍞"},
    {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "search_documents",
        "arguments": '{"query": "gluten-free sourdough saturday"}',
    },
    {
        "type": "function_call_output",
        "call_id": "call_1",
        "output": '[{"source": "menu.md", "text": "Saturdays: gluten-free sourdough, 8:00-14:00"}]',
    },
    {
        "type": "message",
        "id": "msg_1",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "Yes! Gluten-free sourdough is baked on Saturdays from 8:00 to 14:00.",
                "annotations": [],
            }
        ],
    },
]


class Floor:
    """The least a turn can cost: one indexed SELECT of the latest rows and one INSERT of
    four, on a dedicated connection, with no concurrency control at all."""

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], session_id: str, next_sequence: int
    ) -> None:
        self.conn = conn
        self.session_id = session_id
        self.next_sequence = next_sequence

    async def turn(self) -> None:
        cursor = await self.conn.execute(
            "SELECT data FROM bench_floor WHERE session_id = %s ORDER BY seq DESC LIMIT %s",
            (self.session_id, WINDOW),
        )
        await cursor.fetchall()
        first = self.next_sequence
        self.next_sequence += len(TURN)
        values = ", ".join(["(%s, %s, %s)"] * len(TURN))
        params: list[Any] = []
        for offset, item in enumerate(TURN):
            params += [self.session_id, first + offset, json.dumps(item)]
        await self.conn.execute(
            f"INSERT INTO bench_floor (session_id, seq, data) VALUES {values}", params
        )


async def ours_turn(session: DatabaseSession) -> None:
    await session.get_items(limit=WINDOW)
    await session.add_items(TURN)


async def sdk_turn(session: SQLAlchemySession) -> None:
    await session.get_items(limit=WINDOW)
    await session.add_items(TURN)


async def median_ms(turn: Callable[[], Awaitable[None]], repeats: int) -> float:
    for _ in range(5):
        await turn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        await turn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def run(database_url: str, libpq_dsn: str, *, quick: bool) -> list[Row]:
    global STATEMENTS
    STATEMENTS = StatementConnections(database_url, size=4)
    repeats = 60 if quick else 400
    engine = create_engine(database_url, pool_size=20)
    sdk_engine = create_engine(database_url, pool_size=20)
    floor_conn = await psycopg.AsyncConnection.connect(libpq_dsn, autocommit=True)
    try:
        await _prepare_floor(floor_conn)
        deep = await _our_session(engine, 10_000)
        sdk_deep = await _sdk_session(sdk_engine, 10_000)
        floor = Floor(floor_conn, "deep", await _fill_floor(floor_conn, "deep", 10_000))

        ours_ms = await median_ms(lambda: ours_turn(deep), repeats)
        sdk_ms = await median_ms(lambda: sdk_turn(sdk_deep), repeats)
        floor_ms = await median_ms(floor.turn, repeats)

        ours_tps, sdk_tps = await _concurrent_turns_per_second(engine, sdk_engine, quick=quick)
        ours_all, sdk_all = await _whole_history_ms(deep, sdk_deep, repeats=3 if quick else 10)
        shallow_ms, deepest_ms = await _flatness(engine, repeats, quick=quick)
    finally:
        await STATEMENTS.aclose()
        await floor_conn.close()
        await engine.dispose()
        await sdk_engine.dispose()
    return [
        Row(
            "session turn @10k items: ours vs raw psycopg floor",
            "ms/turn",
            ours_ms,
            floor_ms,
            "<= 1.5",
        ),
        Row(
            "session turn @10k items: ours vs SDK SQLAlchemySession",
            "ms/turn",
            ours_ms,
            sdk_ms,
            "<= 0.3",
        ),
        Row(
            "16 conversations on one loop: ours vs SDK SQLAlchemySession",
            "turns/s",
            ours_tps,
            sdk_tps,
            ">= 4",
        ),
        Row(
            "get_items() of 10k items: ours vs SDK SQLAlchemySession",
            "ms",
            ours_all,
            sdk_all,
            "<= 0.667",
        ),
        Row(
            "turn with limit: 100k-item vs 100-item history (ours)",
            "ms/turn",
            deepest_ms,
            shallow_ms,
            "<= 1.3",
        ),
    ]


async def _our_session(engine: AsyncEngine, history: int) -> DatabaseSession:
    """A session with `history` items, written in bulk server-side."""
    async with create_sessionmaker(engine).begin() as db:
        builder = await create_builder(name="bench", instructions="-", model="-", db=db)
        session_id = await get_or_create_session(builder.id, "bench", uuid.uuid4().hex, db=db)
        await db.execute(
            text(
                "INSERT INTO session_items (session_id, item_data, sequence)"
                " SELECT :session_id, CAST(:item AS jsonb), g FROM generate_series(0, :last) AS g"
            ),
            {"session_id": session_id, "item": json.dumps(TURN[3]), "last": history - 1},
        )
        await db.execute(
            text("UPDATE sessions SET next_sequence = :next WHERE id = :session_id"),
            {"next": history, "session_id": session_id},
        )
    return DatabaseSession(session_id, engine=engine, statements=STATEMENTS)


async def _sdk_session(engine: AsyncEngine, history: int) -> SQLAlchemySession:
    session = SQLAlchemySession(uuid.uuid4().hex, engine=engine, create_tables=True)
    await session.add_items(TURN[:1])
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO agent_messages (session_id, message_data)"
                " SELECT :session_id, :item FROM generate_series(2, :history)"
            ),
            {"session_id": session.session_id, "item": json.dumps(TURN[3]), "history": history},
        )
    return session


async def _prepare_floor(conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("DROP TABLE IF EXISTS bench_floor")
    await conn.execute(
        "CREATE TABLE bench_floor (session_id text NOT NULL, seq integer NOT NULL,"
        " data jsonb NOT NULL, PRIMARY KEY (session_id, seq))"
    )


async def _fill_floor(conn: psycopg.AsyncConnection[Any], session_id: str, history: int) -> int:
    await conn.execute(
        "INSERT INTO bench_floor SELECT %s, g, %s::jsonb FROM generate_series(0, %s) AS g",
        (session_id, json.dumps(TURN[3]), history - 1),
    )
    return history


async def _concurrent_turns_per_second(
    engine: AsyncEngine, sdk_engine: AsyncEngine, *, quick: bool
) -> tuple[float, float]:
    turns_each = 10 if quick else 40
    ours = [await _our_session(engine, 1_000) for _ in range(16)]
    sdk = [await _sdk_session(sdk_engine, 1_000) for _ in range(16)]

    async def rate(turn: Callable[[Any], Awaitable[None]], sessions: list[Any]) -> float:
        async def converse(session: Any) -> None:
            for _ in range(turns_each):
                await turn(session)

        started = time.perf_counter()
        await asyncio.gather(*(converse(session) for session in sessions))
        return len(sessions) * turns_each / (time.perf_counter() - started)

    return await rate(ours_turn, ours), await rate(sdk_turn, sdk)


async def _whole_history_ms(
    ours: DatabaseSession, sdk: SQLAlchemySession, *, repeats: int
) -> tuple[float, float]:
    async def timed(read: Callable[[], Awaitable[Any]]) -> float:
        await read()
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            await read()
            samples.append((time.perf_counter() - started) * 1000)
        return statistics.median(samples)

    return await timed(ours.get_items), await timed(sdk.get_items)


async def _flatness(engine: AsyncEngine, repeats: int, *, quick: bool) -> tuple[float, float]:
    shallow = await _our_session(engine, 100)
    deepest = await _our_session(engine, 100_000)
    return (
        await median_ms(lambda: ours_turn(shallow), repeats),
        await median_ms(lambda: ours_turn(deepest), repeats),
    )
