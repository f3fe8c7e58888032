"""`DatabaseSession`: the Agents SDK `Session` protocol over the `session_items` table.

The runner calls it to load history before each model call and to save every item it
produces, so no code of ours ever assembles prior messages. One row per SDK item, the
item dict stored untouched, ordered by `sequence` (never by `created_at`).

The runner calls `get_items` and `add_items` on every turn, so on Postgres each is one
statement, one round trip, outside any explicit transaction: reads parse the window
as one JSON document (the whole history is aggregated server-side); writes take the
next sequence numbers from `sessions.next_sequence` in the same statement that inserts
the batch (the row lock serializes concurrent writers, so sequences stay contiguous).
SQLite, the embedded demo's database, takes the portable path inside one transaction.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import resolve_session_limit
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.conversations import LeaseLostError
from db.models import AgentSessionRow, SessionItem
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


def append_statement(*also: str) -> str:
    """The one-statement Postgres append; `also` are more data-modifying CTEs run in the
    same statement, which may read `locked.first_sequence` (none when it was refused)."""
    return "WITH " + ", ".join([_PG_LOCKED, *also]) + _PG_INSERT


_PG_APPEND = append_statement()


class SessionNotFoundError(LookupError):
    """The `sessions` row behind a `DatabaseSession` does not exist (or was deleted)."""


class DatabaseSession:
    """Postgres- (or SQLite-) backed history of one `sessions` row.

    With a `fencing_token`, writes succeed only while the `sessions` row's lease carries
    that token: a worker whose lease was taken over cannot write (`LeaseLostError`).
    With `statements` (a process's persistent connections), Postgres reads and writes
    skip the pool checkout; without, they go through `engine`.
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: uuid.UUID | str,
        *,
        engine: AsyncEngine,
        session_settings: SessionSettings | None = None,
        fencing_token: uuid.UUID | None = None,
        statements: StatementConnections | None = None,
    ) -> None:
        self._id = uuid.UUID(str(session_id))
        self.session_id = str(self._id)
        self.session_settings = session_settings or SessionSettings()
        self._engine = engine
        self._fencing_token = fencing_token
        self._statements = statements
        self._postgres = engine.dialect.name == "postgresql"

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest `limit` items (all when None) in chronological order."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit == 0:
            return []
        unlimited = limit is None or limit < 0
        if self._postgres:
            if unlimited:
                # The whole history as one JSON document: one row to fetch, one parse.
                [(document,)] = await self._run(_PG_ALL, {"session_id": self._id})
                return json.loads(document)
            rows = await self._run(_PG_LATEST, {"session_id": self._id, "limit": limit})
            # One JSON parse of the window beats one per row.
            return json.loads("[" + ",".join(document for (document,) in reversed(rows)) + "]")
        async with self._engine.connect() as conn:
            query = select(SessionItem.item_data).where(SessionItem.session_id == self._id)
            if unlimited:
                return list(await conn.scalars(query.order_by(SessionItem.sequence)))
            newest_first = await conn.scalars(
                query.order_by(SessionItem.sequence.desc()).limit(limit)
            )
            return list(reversed(newest_first.all()))

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append `items` as one batch with the next contiguous sequence numbers."""
        if not items:
            return
        if self._postgres:
            await self._append_alone(_PG_APPEND, self._append_params(items))
            return
        async with self._engine.begin() as conn:
            await self._append(conn, items)

    async def _append_alone(self, statement: str, params: dict[str, Any]) -> None:
        """Run a one-statement append (`append_statement`); say why if it was refused."""
        if not await self._run(statement, params):
            async with self._engine.connect() as conn:
                await self._explain_refusal(conn)

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
            return popped.item_data

    async def clear_session(self) -> None:
        """Forget the whole history; the `sessions` row itself stays."""
        async with self._engine.begin() as conn:
            await self._lock(conn, next_sequence=0)
            await conn.execute(delete(SessionItem).where(SessionItem.session_id == self._id))

    async def _append(self, conn: AsyncConnection, items: list[Any]) -> int:
        """Store the batch on `conn` (the portable path; Postgres uses `append_statement`);
        returns the first sequence number it was given."""
        first_sequence = await self._reserve(conn, len(items))
        await conn.execute(
            insert(SessionItem),
            [
                {
                    "id": uuid.uuid4(),
                    "session_id": self._id,
                    "item_data": item,
                    "sequence": first_sequence + offset,
                }
                for offset, item in enumerate(items)
            ],
        )
        return first_sequence

    def _append_params(self, items: list[Any]) -> dict[str, Any]:
        return {
            "session_id": self._id,
            "token": self._fencing_token,
            "count": len(items),
            "items": [json.dumps(item) for item in items],
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
