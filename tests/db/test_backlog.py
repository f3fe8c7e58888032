"""The inbox backlog queries (`wabot inbox`, the metrics scrape) and the sweeper's read
the partial index over unanswered messages, in any plan Postgres may cache for them:
psycopg prepares a statement a connection runs often, and Postgres may then plan it once
for any parameter values."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.backlog import inbox_backlog, inbox_waiting
from db.inbox import claim_stranded

INDEX = "ix_inbound_messages_unanswered"


async def sent_statement(
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    query: Callable[..., Awaitable[object]],
) -> str:
    """The SQL `query` sends, its bound parameters as `$1`, `$2`… as the server sees them."""
    sent: list[str] = []

    def capture(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with sessions() as db:
            await query(db=db)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    numbers: dict[str, int] = {}
    return re.sub(
        r"%\((\w+)\)s", lambda m: f"${numbers.setdefault(m[1], len(numbers) + 1)}", sent[-1]
    )


def sweep(*, db: AsyncSession) -> Awaitable[object]:
    """The sweeper's claim (it finds nothing in an empty inbox, so it only reads)."""
    return claim_stranded(older_than=datetime.now(UTC), limit=100, db=db)


@pytest.mark.parametrize("query", [inbox_waiting, inbox_backlog, sweep])
async def test_the_backlog_queries_use_the_unanswered_index_in_a_generic_plan(
    engine: AsyncEngine,
    db_sessions: async_sessionmaker[AsyncSession],
    query: Callable[..., Awaitable[object]],
) -> None:
    statement = await sent_statement(engine, db_sessions, query)
    parameters = len(set(re.findall(r"\$\d+", statement)))
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.exec_driver_sql(f"PREPARE backlog_query AS {statement}")
        try:
            nulls = f"({', '.join(['NULL'] * parameters)})" if parameters else ""
            explained = await conn.exec_driver_sql(f"EXPLAIN EXECUTE backlog_query{nulls}")
            plan = "\n".join(line for (line,) in explained)
        finally:
            await conn.exec_driver_sql("DEALLOCATE backlog_query")
    assert f"Index Scan on {INDEX}" in plan, plan
