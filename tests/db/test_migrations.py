"""The migrations build exactly the schema the models describe, both ways, on both
databases; `session_items` matches the seed plan."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from db import migrate
from db.engine import create_engine
from db.models import Base
from tests.services import LIBPQ_DSN

SQLITE_SEARCH = ("document_chunks_fts", "ix_document_chunks_search", "session_items_fts")
"""SQLite searches documents and conversations with FTS5 tables (and their shadow tables)
the models do not describe, instead of Postgres's GIN indexes."""

POSTGRES_SEARCH = "ix_session_items_search"
"""Postgres searches what was said by an expression index on `session_items` the models
do not describe (the seed table keeps its columns; see migration 0017)."""

SESSIONS_EXPRESSIONS = (
    "ix_sessions_builder_id_shown_user",
    "ix_sessions_external_id_lower",
    "ix_sessions_name_trigrams",
)
"""The sessions list sorts and searches by expressions on Postgres (migration 0021),
which the models do not describe: autogenerate compares columns, not expressions."""


def differences(connection: Connection) -> list[object]:
    def compared(_object: object, name: str | None, *_: object) -> bool:
        return name not in (POSTGRES_SEARCH, *SESSIONS_EXPRESSIONS)

    context = MigrationContext.configure(connection, opts={"include_object": compared})
    return list(compare_metadata(context, Base.metadata))


def sqlite_differences(connection: Connection) -> list[object]:
    def compared(_object: object, name: str | None, *_: object) -> bool:
        return not (name or "").startswith(SQLITE_SEARCH)

    context = MigrationContext.configure(connection, opts={"include_object": compared})
    return list(compare_metadata(context, Base.metadata))


async def test_models_match_the_migrated_postgres_schema(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        assert await conn.run_sync(differences) == []


async def test_models_match_the_migrated_sqlite_schema(sqlite_url: str) -> None:
    assert await schema_differences(sqlite_url) == []


def test_session_items_is_the_seed_table() -> None:
    with psycopg.connect(LIBPQ_DSN) as conn:
        columns = conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns"
            " WHERE table_name = 'session_items' ORDER BY ordinal_position"
        ).fetchall()
        constraints = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'session_items'::regclass ORDER BY conname"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'session_items'"
        ).fetchall()
    assert columns == [
        ("id", "uuid", "NO", "gen_random_uuid()"),
        ("session_id", "uuid", "NO", None),
        ("item_data", "jsonb", "NO", None),
        ("sequence", "integer", "NO", None),
        ("created_at", "timestamp with time zone", "NO", "now()"),
    ]
    assert sorted(definition for (definition,) in constraints) == [
        "FOREIGN KEY (session_id) REFERENCES sessions(id) ON DELETE CASCADE",
        "PRIMARY KEY (id)",
        "UNIQUE (session_id, sequence)",
    ]
    names = {name for (name,) in indexes}
    assert "session_items_seq_unique" in names and "session_items_seq_idx" not in names


@pytest.mark.usefixtures("db_sessions")  # no rows: a downgrade may refuse to lose them
def test_downgrade_and_upgrade_again(
    tmp_path: Path, database_url: str, pooled_database_url: str
) -> None:
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'wabot.db'}"  # not the suite's: no rows
    migrate.upgrade(sqlite_url)
    for url in (sqlite_url, database_url, pooled_database_url):
        migrate.downgrade(url, "base")
        migrate.upgrade(url)
        assert asyncio.run(schema_differences(url)) == [], url


async def schema_differences(url: str) -> list[object]:
    """How the schema at `url` differs from the models (SQLite's search tables aside)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            compare = sqlite_differences if url.startswith("sqlite") else differences
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()
