"""`DatabaseSession`: the Agents SDK `Session` protocol over the `session_items` table.

The runner calls it to load history before each model call and to save every item it
produces, so no code of ours ever assembles prior messages. One row per SDK item, the
item dict stored untouched, ordered by `sequence` (never by `created_at`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from agents.memory.session_settings import resolve_session_limit
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.models import AgentSessionRow, SessionItem


class SessionNotFoundError(LookupError):
    """The `sessions` row behind a `DatabaseSession` does not exist (or was deleted)."""


class DatabaseSession:
    """Postgres- (or SQLite-) backed history of one `sessions` row.

    Every mutation is one short transaction that first locks the `sessions` row (the
    `UPDATE … updated_at` takes the row lock), so concurrent writers get contiguous
    `sequence` values instead of unique-constraint errors.
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: uuid.UUID | str,
        *,
        engine: AsyncEngine,
        session_settings: SessionSettings | None = None,
    ) -> None:
        self._id = uuid.UUID(str(session_id))
        self.session_id = str(self._id)
        self.session_settings = session_settings or SessionSettings()
        self._engine = engine

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The latest `limit` items (all when None) in chronological order."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit == 0:
            return []
        query = select(SessionItem.item_data).where(SessionItem.session_id == self._id)
        async with self._engine.connect() as conn:
            if limit is None or limit < 0:
                result = await conn.scalars(query.order_by(SessionItem.sequence))
                return list(result)
            newest_first = await conn.scalars(
                query.order_by(SessionItem.sequence.desc()).limit(limit)
            )
            return list(reversed(newest_first.all()))

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append `items` as one batch with the next contiguous sequence numbers."""
        if not items:
            return
        async with self._engine.begin() as conn:
            await self._lock_and_touch(conn)
            first_sequence = await conn.scalar(
                select(func.coalesce(func.max(SessionItem.sequence) + 1, 0)).where(
                    SessionItem.session_id == self._id
                )
            )
            assert first_sequence is not None
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
            await self._after_append(conn, first_sequence, items)

    async def pop_item(self) -> TResponseInputItem | None:
        """Delete and return the newest item, or None when the history is empty."""
        async with self._engine.begin() as conn:
            await self._lock_and_touch(conn)
            newest = (
                select(SessionItem.id)
                .where(SessionItem.session_id == self._id)
                .order_by(SessionItem.sequence.desc())
                .limit(1)
                .scalar_subquery()
            )
            popped = await conn.scalar(
                delete(SessionItem).where(SessionItem.id == newest).returning(SessionItem.item_data)
            )
            return popped

    async def clear_session(self) -> None:
        """Forget the whole history; the `sessions` row itself stays."""
        async with self._engine.begin() as conn:
            await self._lock_and_touch(conn)
            await conn.execute(delete(SessionItem).where(SessionItem.session_id == self._id))

    async def _lock_and_touch(self, conn: AsyncConnection) -> None:
        touched = await conn.execute(
            update(AgentSessionRow)
            .where(AgentSessionRow.id == self._id)
            .values(updated_at=func.now())
            .returning(AgentSessionRow.id)
        )
        if touched.first() is None:
            raise SessionNotFoundError(f"session {self.session_id} does not exist")

    async def _after_append(
        self, conn: AsyncConnection, first_sequence: int, items: Sequence[Any]
    ) -> None:
        """Subclasses record bookkeeping here, atomically with the appended batch."""
