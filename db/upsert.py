"""`INSERT … ON CONFLICT` for whichever dialect the unit of work is bound to."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def upsert(model: Any, *, db: AsyncSession) -> Any:
    """An insert statement for `model` in `db`'s dialect (Postgres or SQLite), which can
    take `on_conflict_do_nothing` or `on_conflict_do_update`."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model)


def insert_or_ignore(model: Any, *, db: AsyncSession) -> Any:
    """An insert statement for `model` that skips rows violating a unique constraint."""
    return upsert(model, db=db).on_conflict_do_nothing()
