"""`INSERT … ON CONFLICT DO NOTHING` for whichever dialect the unit of work is bound to."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_or_ignore(model: Any, *, db: AsyncSession) -> Any:
    """An insert statement for `model` that skips rows violating a unique constraint."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).on_conflict_do_nothing()
