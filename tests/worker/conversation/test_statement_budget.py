"""What an ordinary turn costs the database: every statement is a round trip and CPU on
both sides, and a worker's throughput is bounded by them. A change that adds one to
every turn should be a decision (raise the budget here, say why in the commit), not an
accident found months later in `make bench`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import prepared
from db.models import Channel
from tests.factories import arrive
from tests.fakes.twilio import FakeTwilio
from worker.conversation.inbound import process_inbound
from worker.process.runtime import Runtime

STATEMENTS_PER_TURN = 20
"""Statements of a text message answered in a conversation that already exists: the
message read (on its own, outside any transaction), the task's transaction (the session
and the message joining it; the lease, learning with it whether a turn is unfinished;
latecomers; pending messages with the sender's rate; the new turn, its messages taken,
what it needs), the history read and its two saves, the reply recorded and marked sent,
and the transaction that renews the lease, closes the turn and its messages with the
run's cost, finds nothing pending and gives the lease back."""
ROUND_TRIPS_PER_TURN = 13
"""What of those, and of the two COMMITs, waits for the database: the message joining
its session goes with the lease, latecomers with the pending messages, the new turn and
its messages taken with reading them (a prebuilt statement, not the ORM's, so all three
are one round trip), the closing transaction's renewal, closed turn
and messages and latecomers with its pending messages, and the lease given back with
its COMMIT, each as one round trip (`db.prepared.defer`). (BEGIN goes with the first
statement when that is deferred: the closing transaction's.)"""
TRANSACTIONS_PER_TURN = 2
"""BEGIN … COMMIT pairs: the task's and the one closing the turn; every other write is
one statement committing on its own."""


@dataclass
class Seen:
    statements: list[str] = field(default_factory=list)
    """Each statement's first words, in the order they ran."""
    transactions: int = 0
    round_trips: int = 0
    """Statements sent alone, batches sent together (`db.prepared.defer`), and each
    COMMIT not sent with a batch."""


@contextmanager
def counted(runtime: Runtime) -> Iterator[Seen]:
    """Statements and transactions `runtime` runs in the block: those of its engine and
    those of its persistent statement connections (the session's items)."""
    seen = Seen()

    def on_statement(connection: Connection, cursor: Any, statement: str, *_: Any) -> None:
        seen.statements.append(" ".join(statement.split())[:70])
        seen.round_trips += 1

    def on_commit(connection: Connection) -> None:
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            seen.transactions += 1
            seen.round_trips += 1

    engine = runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    statements = runtime.statements
    assert statements is not None, "the statement budget is Postgres's"
    fetch = statements.fetch

    async def counting_fetch(statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        seen.statements.append(" ".join(statement.split())[:70])
        seen.round_trips += 1
        return await fetch(statement, params)

    async def counting_pipeline(driver: Any, batch: list[Any]) -> list[Any]:
        sent = [" ".join(each.statement.sql.split())[:70] for each in batch]
        seen.statements += [statement for statement in sent if statement != "COMMIT"]
        seen.round_trips += 1 if "COMMIT" not in sent else 0  # counted by on_commit
        return await pipeline(driver, batch)

    statements.fetch = counting_fetch  # type: ignore[method-assign]
    pipeline = prepared._pipeline
    prepared._pipeline = counting_pipeline
    try:
        yield seen
    finally:
        statements.fetch = fetch  # type: ignore[method-assign]
        prepared._pipeline = pipeline
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)


async def test_an_ordinary_turn_stays_within_its_statement_budget(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime: Runtime,
    fake_twilio: FakeTwilio,
) -> None:
    await process_inbound(await arrive(db_sessions, channel, "Hello"), runtime=runtime)
    second = await arrive(db_sessions, channel, "And again")

    with counted(runtime) as seen:
        await process_inbound(second, runtime=runtime)

    assert [m["Body"] for m in fake_twilio.messages][-1] == "You said: And again"
    assert len(seen.statements) <= STATEMENTS_PER_TURN, "\n".join(seen.statements)
    assert seen.round_trips <= ROUND_TRIPS_PER_TURN, "\n".join(seen.statements)
    assert seen.transactions <= TRANSACTIONS_PER_TURN
