"""Async engines: one per process (per event loop in a worker), tuned per dialect."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from sqlalchemy import event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import NullPool

from db import lossless_json
from db.database_errors import hide_data

SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5
_CARRIED_LARGE_VALUE = "wabot_carried_large_value"

Pooler = Literal["none", "transaction"]
"""What sits between us and Postgres (`DATABASE_POOLER`): nothing (or a session-mode
pooler), or a transaction-mode pooler such as PgBouncer's `pool_mode = transaction`."""


def psycopg_options(pooler: Pooler) -> dict[str, Any]:
    """Connection options every psycopg connection of ours takes behind `pooler`.

    psycopg prepares a statement a connection has run five times, so Postgres stops
    parsing and planning it. A transaction-mode pooler hands each transaction to any
    server connection, where that prepared name is unknown or already taken
    (`DuplicatePreparedStatement`): there nothing is prepared, at the price of a parse
    and a plan per statement. Nothing else of ours needs a session of its own: no
    session-level SET, advisory lock, LISTEN, temporary table or server-side cursor.
    """
    return {"prepare_threshold": None} if pooler == "transaction" else {}


def create_engine(
    url: str, *, pool_size: int = 10, pooler: Pooler = "none", pooled: bool = True
) -> AsyncEngine:
    """Create the engine for `url` (already normalised by `Settings`).

    A Postgres process holds at most `2 × pool_size` connections. Conversations only hold
    one for a short transaction, never across a model call, so a worker carrying dozens
    of conversations needs far fewer connections than that. Not `pooled`: each use opens
    and closes its own connection (for an event loop that is not the engine's own).

    JSON columns go through `db.lossless_json` (what JSONB cannot hold is stored in its
    lossless form), and database errors never quote the values they refused.
    """
    json_codec = {"json_serializer": lossless_json.dumps, "json_deserializer": lossless_json.loads}
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            # The embedded database's folder (`WABOT_DATA_DIR`) is made on first use.
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        pool: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
        engine = _create_async_engine(url, hide_parameters=True, **json_codec, **pool)
        _serialize_sqlite_writers(engine)
        return engine
    # No pre-ping: it costs a round trip per checkout. A connection that died (database
    # restart, terminated backend) fails its statement once; SQLAlchemy then discards
    # the whole pool, and our callers answer 503 or retry the task.
    pool = (
        {"pool_size": pool_size, "max_overflow": pool_size} if pooled else {"poolclass": NullPool}
    )
    engine = _create_async_engine(
        url,
        hide_parameters=True,  # statement errors are logged: no message text or number in them
        connect_args={
            "connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS,
            **psycopg_options(pooler),
        },
        **json_codec,
        **pool,
    )
    event.listen(engine.sync_engine, "handle_error", _hide_data)
    event.listen(engine.sync_engine, "checkin", _close_if_it_carried_a_large_value)
    return engine


async def close_after_use(db: AsyncSession) -> None:
    """Close the connection `db` uses when it goes back to the pool, instead of keeping
    it: libpq keeps its send and receive buffers as large as the largest value the
    connection ever carried, so every pooled connection that once stored a 16 MB voice
    note would hold 16 MB for the life of the process. For a unit of work that writes
    or reads a whole file; the next use of that pool slot connects again. (SQLite has
    no such buffers: there the mark is ignored.)"""
    connection = await db.connection()
    connection.info[_CARRIED_LARGE_VALUE] = True


def _close_if_it_carried_a_large_value(_dbapi_connection: Any, record: Any) -> None:
    if record is not None and record.info.pop(_CARRIED_LARGE_VALUE, False):
        record.invalidate()


def _hide_data(context: ExceptionContext) -> None:
    """Postgres quotes the values it refused in its errors: cut them before anyone logs."""
    hide_data(context.sqlalchemy_exception or context.original_exception)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def _serialize_sqlite_writers(engine: AsyncEngine) -> None:
    """Let the receiver and the worker share one SQLite file safely.

    WAL lets readers run beside the writer; `BEGIN IMMEDIATE` takes the write lock at the
    start of every transaction, so two read-then-write transactions queue on the busy
    timeout instead of failing to upgrade their locks.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
