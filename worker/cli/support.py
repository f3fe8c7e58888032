"""What every `wabot` command shares: one unit of work per command, plain or JSON output."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from db.builders import get_builder
from db.core.settings import get_settings
from db.engine import create_engine, create_sessionmaker
from db.models import Builder

T = TypeVar("T")
UNDEFINED_TABLE = "42P01"
"""Postgres's SQLSTATE for a table that does not exist (SQLite says "no such table")."""

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print JSON, for scripts, instead of text."
)


def in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed unit of work on the configured database; a database
    that is unreachable or not migrated yet is the command's one-line error."""

    async def run() -> T:
        settings = get_settings()
        engine = create_engine(settings.resolved_database_url, pooler=settings.database_pooler)
        try:
            async with create_sessionmaker(engine).begin() as db:
                return await work(db)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except (OperationalError, ProgrammingError) as error:
        raise click.ClickException(_database_problem(error)) from error


def _database_problem(error: OperationalError | ProgrammingError) -> str:
    reason = str(error.orig).strip().splitlines()[0] if error.orig else type(error).__name__
    undefined_table = getattr(error.orig, "sqlstate", None) == UNDEFINED_TABLE
    if undefined_table or reason.startswith("no such table"):
        return f"the database has no wabot tables yet ({reason}): run `wabot db upgrade`"
    return f"the database (DATABASE_URL) cannot be used: {reason}"


def emit(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, ensure_ascii=False) if as_json else text)


async def existing_builder(builder_id: uuid.UUID, *, db: AsyncSession) -> Builder:
    """The builder, or the command's one-line error naming the id."""
    builder = await get_builder(builder_id, db=db)
    if builder is None:
        raise click.ClickException(f"no builder with id {builder_id}")
    return builder
