"""Running the hot path's statements cheaply.

A worker runs a dozen statements per turn. Built anew and executed through the ORM,
each costs about 0.9 ms of CPU before it reaches the database: constructing the
statement, building its cache key, and matching an UPDATE's criteria against every
object the session holds. Built once at import with bind parameters and run on the
session's connection (`run`), the same statement costs about a third of that. The
session's objects are not updated by such a statement: code that reads a row after
changing it this way loads it again (`populate_existing`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, Executable
from sqlalchemy.ext.asyncio import AsyncSession


async def run(db: AsyncSession, statement: Executable, **params: Any) -> CursorResult[Any]:
    """Execute a prebuilt Core `statement` with `params` in `db`'s transaction, after
    writing the session's pending changes (as an ORM execute would), so the statement
    sees them."""
    if db.new or db.dirty or db.deleted:
        await db.flush()
    connection = await db.connection()
    return await connection.execute(statement, params)
