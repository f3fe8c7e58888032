"""What a run's tools and instructions may know about it (never sent to the model as is)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass(frozen=True)
class TurnContext:
    """`sessions` opens the short units of work of tools that read the database
    (`search_documents`); None where there is no database to read."""

    builder_id: uuid.UUID
    session_id: uuid.UUID
    user_name: str | None = None
    sessions: async_sessionmaker[AsyncSession] | None = None
