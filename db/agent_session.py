"""`DatabaseSession`: the Agents SDK `Session` protocol over the `session_items` table.

The runner calls it to load history before each model call and to save every item it
produces, so no code of ours ever assembles prior messages. One row per SDK item, the
item stored as the runner produced it, ordered by `sequence` (never by `created_at`).

The runner calls `get_items` and `add_items` on every turn, so on Postgres each is one
statement, one round trip, outside any explicit transaction: reads parse the window
as one JSON document (the whole history is aggregated server-side); writes take the
next sequence numbers from `sessions.next_sequence` in the same statement that inserts
the batch (the row lock serializes concurrent writers, so sequences stay contiguous).
SQLite, the embedded demo's database, takes the portable path inside one transaction.

Items are stored as `db.lossless_json` writes them, so anything the SDK's own
`SQLiteSession` stores (a NUL in a tool result, NaN, a lone surrogate) is stored too and
read back identical; the common item costs a few substring checks of its JSON text.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
import weakref
from datetime import UTC, datetime
from typing import Any, Protocol

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import coerce_session_settings, resolve_session_limit
from sqlalchemy import Text, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db import lossless_json
from db.engine import create_engine
from db.models import AgentSessionRow, ArchivedItem, SessionItem
from db.sessions import LeaseLostError
from db.statements import StatementConnections

# Postgres statements, sent with `exec_driver_sql` (psycopg parameters) to skip
# SQLAlchemy's statement and result processing on the runner's hottest path.
_PG_ALL = (
    "SELECT coalesce(json_agg(item_data ORDER BY sequence), '[]')::text"
    " FROM session_items WHERE session_id = %(session_id)s"
)
_PG_LATEST = (
    "SELECT item_data::text FROM session_items"
    " WHERE session_id = %(session_id)s ORDER BY sequence DESC LIMIT %(limit)s"
)
_PG_LOCKED = (
    "locked AS ("
    " UPDATE sessions SET next_sequence = next_sequence + %(count)s, updated_at = now()"
    " WHERE id = %(session_id)s"
    " AND (%(token)s::uuid IS NULL OR lease_token = %(token)s::uuid)"
    " RETURNING next_sequence - %(count)s AS first_sequence)"
)
_PG_INSERT = (
    " INSERT INTO session_items (session_id, item_data, sequence)"
    " SELECT %(session_id)s, item.data, locked.first_sequence + item.ordinal - 1"
    " FROM locked, unnest(%(items)s::jsonb[]) WITH ORDINALITY AS item(data, ordinal)"
    " RETURNING sequence"
)


@functools.cache
def _append_statement(*also: str) -> str:
    """The one-statement Postgres append; `also` are more data-modifying CTEs run in the
    same statement. Built once per set of CTEs, so the text psycopg prepares is the same."""
    return "WITH " + ", ".join([_PG_LOCKED, *also]) + _PG_INSERT


_PG_APPEND = _append_statement()
_PORTABLE_INSERT = insert(SessionItem).values(item_data=bindparam("stored_item", type_=Text()))
"""The portable append, given each item as the JSON text `lossless_json` made of it."""


class SessionNotFoundError(LookupError):
    """The `sessions` row behind a `DatabaseSession` does not exist (or was deleted)."""


class BatchMark(Protocol):
    """Something recorded together with a batch of items, so that either both are stored
    or neither (a turn's "input saved" marker, `db.turns.InputSaved`)."""

    @property
    def postgres_cte(self) -> str:
        """A data-modifying CTE run in the append's one statement; it may read
        `locked.first_sequence` (no row when the append was refused) and the psycopg
        parameters `parameters` gives."""
        ...

    def parameters(self) -> dict[str, Any]: ...

    async def record(self, conn: AsyncConnection, first_sequence: int) -> None:
        """The portable path: record the mark on `conn`, in the append's transaction."""
        ...


class DatabaseSession:
    """Postgres- (or SQLite-) backed history of one `sessions` row.

    With a `fencing_token`, writes succeed only while the `sessions` row's lease carries
    that token: a worker whose lease was taken over cannot write (`LeaseLostError`).
    With `window_from_user_message`, a window of the latest items (a `limit`) starts at
    its first user message: one beginning inside an earlier turn could open with a tool
    result whose call fell outside it, which the model API refuses. Trimming here rather
    than in a runner's `session_input_callback` spares the SDK the deep copies and
    matching it does on every turn with a callback (a tenth of a worker's CPU, py-spy).
    With `statements` (a process's persistent connections), Postgres reads and writes
    skip the pool checkout; without, they go through `engine`.

    `engine` and `statements` belong to the event loop the session was made on (or first
    used on). Used from another loop (a thread running `asyncio.run`), each call opens a
    connection of its own there, so it neither fails nor waits on a loop not running it.
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: uuid.UUID | str,
        *,
        engine: AsyncEngine,
        session_settings: SessionSettings | dict[str, Any] | None = None,
        fencing_token: uuid.UUID | None = None,
        statements: StatementConnections | None = None,
        window_from_user_message: bool = False,
    ) -> None:
        self._id = uuid.UUID(str(session_id))
        self.session_id = str(self._id)
        self.session_settings = (  # normalised and checked as the SDK's sessions do
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )
        self._home_engine = engine
        self._fencing_token = fencing_token
        self._home_statements = statements
        self._window_from_user_message = window_from_user_message
        self._postgres = engine.dialect.name == "postgresql"
        self._home_loop = _running_loop()
        self._visited: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncEngine] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def _engine(self) -> AsyncEngine:
        """The engine for the running event loop: ours on our own loop, else one that
        opens a connection per use on that loop."""
        if self._at_home():
            return self._home_engine
        loop = asyncio.get_running_loop()
        visiting = self._visited.get(loop)
        if visiting is None:
            url = self._home_engine.url.render_as_string(hide_password=False)
            # A connection per use never runs a statement often enough to prepare it:
            # nothing to lose by never preparing, which any pooler in between accepts.
            visiting = self._visited[loop] = create_engine(url, pooled=False, pooler="transaction")
        return visiting

    @property
    def _statements(self) -> StatementConnections | None:
        """The persistent connections, on the loop they belong to only."""
        return self._home_statements if self._at_home() else None

    def _at_home(self) -> bool:
        loop = asyncio.get_running_loop()
        if self._home_loop is None:
            self._home_loop = loop
        return loop is self._home_loop

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest `limit` items (all when None) in chronological order (a window from
        its first user message with `window_from_user_message`)."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit == 0:
            return []
        unlimited = limit is None or limit < 0
        if self._postgres:
            if unlimited:
                # The whole history as one JSON document: one row to fetch, one parse.
                [(document,)] = await self._run(_PG_ALL, {"session_id": self._id})
                items: list[TResponseInputItem] = lossless_json.loads(document)
                return items
            rows = await self._run(_PG_LATEST, {"session_id": self._id, "limit": limit})
            # One JSON parse of the window beats one per row.
            window = "[" + ",".join(document for (document,) in reversed(rows)) + "]"
            return self._windowed(lossless_json.loads(window))
        async with self._engine.connect() as conn:
            query = select(SessionItem.item_data).where(SessionItem.session_id == self._id)
            if unlimited:
                return list(await conn.scalars(query.order_by(SessionItem.sequence)))
            newest_first = await conn.scalars(
                query.order_by(SessionItem.sequence.desc()).limit(limit)
            )
            return self._windowed(list(reversed(newest_first.all())))

    def _windowed(self, latest: list[TResponseInputItem]) -> list[TResponseInputItem]:
        """`latest` from its first user message with `window_from_user_message` (all of
        it when it holds none)."""
        if not self._window_from_user_message:
            return latest
        start = next((n for n, item in enumerate(latest) if item.get("role") == "user"), 0)
        return latest[start:]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append `items` as one batch with the next contiguous sequence numbers."""
        await self.add_items_marked(items, mark=None)

    async def add_items_marked(
        self, items: list[TResponseInputItem], *, mark: BatchMark | None
    ) -> None:
        """`add_items`, recording `mark` with the batch: on Postgres in the same one
        statement, elsewhere in the same transaction. Nothing is stored for no items."""
        if not items:
            return
        stored = stored_items(items)
        if self._postgres:
            params = self._append_params(stored)
            statement = _PG_APPEND
            if mark is not None:
                statement = _append_statement(mark.postgres_cte)
                params.update(mark.parameters())
            if not await self._run(statement, params):
                async with self._engine.connect() as conn:
                    await self._explain_refusal(conn)
            return
        async with self._engine.begin() as conn:
            first_sequence = await self._append(conn, stored)
            if mark is not None:
                await mark.record(conn, first_sequence)

    async def pop_item(self) -> TResponseInputItem | None:
        """Delete and return the newest item, or None when the history is empty."""
        async with self._engine.begin() as conn:
            await self._lock(conn)
            newest = (
                select(SessionItem.id)
                .where(SessionItem.session_id == self._id)
                .order_by(SessionItem.sequence.desc())
                .limit(1)
                .scalar_subquery()
            )
            popped = (
                await conn.execute(
                    delete(SessionItem)
                    .where(SessionItem.id == newest)
                    .returning(SessionItem.item_data, SessionItem.sequence)
                )
            ).first()
            if popped is None:
                return None
            await self._set_next_sequence(conn, popped.sequence)
            item: TResponseInputItem = popped.item_data
            return item

    async def clear_session(self) -> None:
        """Forget the whole history; the `sessions` row itself stays. The forgotten
        items move to `session_item_archive` in the same transaction: the agent no
        longer reads them, the operator's transcript still shows them."""
        async with self._engine.begin() as conn:
            await self._lock(conn, next_sequence=0)
            forgotten = (
                await conn.execute(
                    select(SessionItem.sequence, SessionItem.item_data, SessionItem.created_at)
                    .where(SessionItem.session_id == self._id)
                    .order_by(SessionItem.sequence)
                )
            ).all()
            if forgotten:
                cleared_at = datetime.now(UTC)
                await conn.execute(
                    insert(ArchivedItem),
                    [
                        {
                            "id": uuid.uuid4(),
                            "session_id": self._id,
                            "sequence": sequence,
                            "item_data": item_data,
                            "created_at": created_at,
                            "cleared_at": cleared_at,
                        }
                        for sequence, item_data, created_at in forgotten
                    ],
                )
            await conn.execute(delete(SessionItem).where(SessionItem.session_id == self._id))

    async def _append(self, conn: AsyncConnection, stored: list[str]) -> int:
        """Store the batch (`_stored` items) on `conn`: the portable path, where Postgres
        uses `_append_statement`; returns the first sequence number it was given."""
        first_sequence = await self._reserve(conn, len(stored))
        await conn.execute(
            _PORTABLE_INSERT,
            [
                {
                    "id": uuid.uuid4(),
                    "session_id": self._id,
                    "stored_item": item,
                    "sequence": first_sequence + offset,
                }
                for offset, item in enumerate(stored)
            ],
        )
        return first_sequence

    def _append_params(self, stored: list[str]) -> dict[str, Any]:
        return {
            "session_id": self._id,
            "token": self._fencing_token,
            "count": len(stored),
            "items": stored,
        }

    async def _run(self, statement: str, params: dict[str, Any]) -> list[Any]:
        """One Postgres statement on its own: on a persistent connection when we have
        them, else on a pooled connection in autocommit mode (no BEGIN/ROLLBACK trips)."""
        if self._statements is not None:
            return await self._statements.fetch(statement, params)
        async with self._engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return list(await conn.exec_driver_sql(statement, params))

    async def _reserve(self, conn: AsyncConnection, count: int) -> int:
        reserved = await conn.scalar(
            self._fenced(
                update(AgentSessionRow).values(
                    next_sequence=AgentSessionRow.next_sequence + count, updated_at=func.now()
                )
            ).returning(AgentSessionRow.next_sequence - count)
        )
        if reserved is None:
            await self._explain_refusal(conn)
        return int(reserved)

    async def _lock(self, conn: AsyncConnection, **changes: Any) -> None:
        """Lock the `sessions` row for this transaction (bumping `updated_at`)."""
        locked = await conn.scalar(
            self._fenced(
                update(AgentSessionRow).values(updated_at=func.now(), **changes)
            ).returning(AgentSessionRow.id)
        )
        if locked is None:
            await self._explain_refusal(conn)

    async def _set_next_sequence(self, conn: AsyncConnection, next_sequence: int) -> None:
        await conn.execute(
            update(AgentSessionRow)
            .where(AgentSessionRow.id == self._id)
            .values(next_sequence=next_sequence)
        )

    def _fenced(self, statement: Any) -> Any:
        statement = statement.where(AgentSessionRow.id == self._id)
        if self._fencing_token is not None:
            statement = statement.where(AgentSessionRow.lease_token == self._fencing_token)
        return statement

    async def _explain_refusal(self, conn: AsyncConnection) -> None:
        exists = await conn.scalar(select(AgentSessionRow.id).where(AgentSessionRow.id == self._id))
        if exists is None:
            raise SessionNotFoundError(f"session {self.session_id} does not exist")
        raise LeaseLostError(f"session {self.session_id} is leased to another worker")


def stored_items(items: list[TResponseInputItem]) -> list[str]:
    """Each item as the JSON text stored for it; `TypeError` for an item JSON cannot hold
    (before anything is written), as with the SDK's own sessions."""
    return [lossless_json.dumps(item) for item in items]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # made outside any loop: the first one to use it is its own
        return None
