"""Alembic environment: migrates the database named by the app's own settings."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from db.core.settings import get_settings
from db.engine import create_engine
from db.models import Base


def _run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _migrate() -> None:
    settings = get_settings()
    url = context.config.attributes.get("database_url") or settings.resolved_database_url
    engine = create_engine(url, pooler=settings.database_pooler)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_migrate())
