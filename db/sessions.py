"""Agent sessions (one per builder, platform and user) and the lease that serializes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AgentSessionRow, SessionItem


class LeaseLostError(RuntimeError):
    """Another worker took the conversation over (our lease expired): stop writing."""


async def get_or_create_session(
    builder_id: uuid.UUID,
    platform: str,
    external_id: str,
    *,
    display_name: str | None = None,
    wa_id: str | None = None,
    user_id: str | None = None,
    db: AsyncSession,
) -> uuid.UUID:
    """The id of the session for this user, created when new; the contact details given
    (profile name, both WhatsApp ids) are kept on it, latest wins, None keeps what is
    known. One race-free statement (INSERT … ON CONFLICT DO UPDATE … RETURNING)."""
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    contact = {"display_name": display_name, "wa_id": wa_id, "user_id": user_id}
    upsert = dialect.insert(AgentSessionRow).values(
        id=uuid.uuid4(),
        builder_id=builder_id,
        platform=platform,
        external_id=external_id,
        **contact,
    )
    columns = AgentSessionRow.__table__.c
    upsert = upsert.on_conflict_do_update(
        index_elements=[columns.builder_id, columns.platform, columns.external_id],
        set_={name: func.coalesce(upsert.excluded[name], columns[name]) for name in contact},
    )
    session_id: uuid.UUID | None = await db.scalar(upsert.returning(AgentSessionRow.id))
    assert session_id is not None
    return session_id


async def follow_number_change(session_id: uuid.UUID, new_wa_id: str, *, db: AsyncSession) -> None:
    """The user changed their WhatsApp number to `new_wa_id`: the session keeps it, and
    one known by the old number is known by the new one from now on (unless the new
    number already has a conversation of its own), so the next message from the new
    number continues this conversation. Safe to repeat."""
    found = await db.get(AgentSessionRow, session_id, with_for_update=True)
    if found is None:
        return
    new_key = f"+{new_wa_id}"
    by_old_number = found.wa_id is not None and found.external_id == f"+{found.wa_id.lstrip('+')}"
    if by_old_number and found.external_id != new_key:
        taken = await db.scalar(
            select(AgentSessionRow.id).where(
                AgentSessionRow.builder_id == found.builder_id,
                AgentSessionRow.platform == found.platform,
                AgentSessionRow.external_id == new_key,
            )
        )
        if taken is None:
            found.external_id = new_key
    found.wa_id = new_wa_id


async def acquire_lease(
    session_id: uuid.UUID, *, ttl_seconds: float, db: AsyncSession
) -> uuid.UUID | None:
    """Take the conversation if nobody holds a live lease on it; returns the fencing token."""
    now = datetime.now(UTC)
    token = uuid.uuid4()
    taken = await db.execute(
        update(AgentSessionRow)
        .where(
            AgentSessionRow.id == session_id,
            or_(AgentSessionRow.lease_token.is_(None), AgentSessionRow.lease_expires_at < now),
        )
        .values(lease_token=token, lease_expires_at=now + timedelta(seconds=ttl_seconds))
        .returning(AgentSessionRow.id)
        # The database compares the expiry, not Python: a row this session already
        # loaded from SQLite holds a naive timestamp that cannot be compared to `now`.
        .execution_options(synchronize_session="fetch")
    )
    return token if taken.first() is not None else None


async def renew_lease(
    session_id: uuid.UUID, token: uuid.UUID, *, ttl_seconds: float, db: AsyncSession
) -> bool:
    """Extend our lease; False when it expired and another worker took the conversation."""
    renewed = await db.execute(
        update(AgentSessionRow)
        .where(AgentSessionRow.id == session_id, AgentSessionRow.lease_token == token)
        .values(lease_expires_at=datetime.now(UTC) + timedelta(seconds=ttl_seconds))
        .returning(AgentSessionRow.id)
    )
    return renewed.first() is not None


async def release_lease(session_id: uuid.UUID, token: uuid.UUID, *, db: AsyncSession) -> None:
    await db.execute(
        update(AgentSessionRow)
        .where(AgentSessionRow.id == session_id, AgentSessionRow.lease_token == token)
        .values(lease_token=None, lease_expires_at=None)
    )


async def session_items_of(session_id: uuid.UUID, *, db: AsyncSession) -> list[SessionItem]:
    """Every stored item of a session, in sequence order (for transcripts and dashboards)."""
    result = await db.scalars(
        select(SessionItem)
        .where(SessionItem.session_id == session_id)
        .order_by(SessionItem.sequence)
    )
    return list(result)


async def last_item(session_id: uuid.UUID, *, db: AsyncSession) -> SessionItem | None:
    return await db.scalar(
        select(SessionItem)
        .where(SessionItem.session_id == session_id)
        .order_by(SessionItem.sequence.desc())
        .limit(1)
    )


async def latest_items(session_id: uuid.UUID, count: int, *, db: AsyncSession) -> list[SessionItem]:
    """The session's `count` newest items, newest first."""
    result = await db.scalars(
        select(SessionItem)
        .where(SessionItem.session_id == session_id)
        .order_by(SessionItem.sequence.desc())
        .limit(count)
    )
    return list(result)


async def item_sequences(session_id: uuid.UUID, *, db: AsyncSession) -> list[int]:
    """Every item's `sequence`, in the order `DatabaseSession.get_items` returns them."""
    return list(
        await db.scalars(
            select(SessionItem.sequence)
            .where(SessionItem.session_id == session_id)
            .order_by(SessionItem.sequence)
        )
    )
