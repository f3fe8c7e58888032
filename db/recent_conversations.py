"""The conversations most recently active, across builders: what `wabot conversation
list` shows (the dashboard lists one builder's sessions, `dashboard_queries`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.core.clock import as_utc
from db.dashboard_queries import session_status
from db.models import AgentSessionRow, Builder, SessionItem, Turn


@dataclass(frozen=True)
class RecentConversation:
    id: uuid.UUID
    builder_id: uuid.UUID
    builder_name: str
    platform: str
    external_id: str
    display_name: str | None
    last_message_at: datetime | None
    """When its latest item was stored; None for a conversation with none yet."""
    status: str
    """`active`, `paused` or `failed turn`, as the dashboard says."""


async def recent_conversations(
    *, limit: int, builder_id: uuid.UUID | None = None, db: AsyncSession
) -> list[RecentConversation]:
    """The `limit` conversations active last (of `builder_id` alone when given, by
    `ix_sessions_builder_id_updated_at`)."""
    latest_turn_status = (
        select(Turn.status)
        .where(Turn.session_id == AgentSessionRow.id)
        .order_by(Turn.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    # The latest item's time, by `session_items_seq_unique`: one index entry, where
    # `max(created_at)` read every item of a long conversation.
    last_message_at = (
        select(SessionItem.created_at)
        .where(SessionItem.session_id == AgentSessionRow.id)
        .order_by(SessionItem.sequence.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(AgentSessionRow, Builder.name, last_message_at, latest_turn_status)
        .join(Builder, Builder.id == AgentSessionRow.builder_id)
        .order_by(AgentSessionRow.updated_at.desc(), AgentSessionRow.id)
        .limit(limit)
    )
    if builder_id is not None:
        query = query.where(AgentSessionRow.builder_id == builder_id)
    return [
        RecentConversation(
            id=row.id,
            builder_id=row.builder_id,
            builder_name=name,
            platform=row.platform,
            external_id=row.external_id,
            display_name=row.display_name,
            last_message_at=as_utc(last) if last is not None else None,
            status=session_status(row, status),
        )
        for row, name, last, status in await db.execute(query)
    ]
