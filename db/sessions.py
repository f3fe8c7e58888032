"""Agent sessions (one per builder, platform and user) and the lease that serializes them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AgentSessionRow, SessionItem, Turn, TurnStatus
from db.prepared import Rows, defer, run


class LeaseLostError(RuntimeError):
    """Another worker took the conversation over (our lease expired): stop writing."""


@dataclass(frozen=True)
class Lease:
    """A conversation's lease just taken: its fencing token, and whether one of its turns
    was left unfinished (so the holder resumes it before anything else)."""

    token: uuid.UUID
    unfinished_turn: bool


_CONTACT = ("display_name", "wa_id", "user_id")


def _session_upsert(dialect: Any) -> Any:
    """INSERT … ON CONFLICT DO UPDATE … RETURNING id for `dialect` (Postgres or SQLite),
    built once per dialect: the contact details given are kept, None keeps what is known."""
    columns = AgentSessionRow.__table__.c
    upsert = dialect.insert(AgentSessionRow).values(
        {name: bindparam(f"new_{name}", type_=columns[name].type) for name in _CONTACT}
        | {
            "id": bindparam("new_id"),
            "builder_id": bindparam("builder_id"),
            "platform": bindparam("platform"),
            "external_id": bindparam("external_id"),
            # Given, not left to the column's Python default, which SQLAlchemy would
            # evaluate on every call: the statement is then compiled once (`db.prepared`).
            "next_sequence": 0,
        }
    )
    return upsert.on_conflict_do_update(
        index_elements=[columns.builder_id, columns.platform, columns.external_id],
        set_={name: func.coalesce(upsert.excluded[name], columns[name]) for name in _CONTACT},
    ).returning(AgentSessionRow.id)


_SESSION_UPSERT = {"postgresql": _session_upsert(postgresql), "sqlite": _session_upsert(sqlite)}


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
    upsert = _SESSION_UPSERT[db.get_bind().dialect.name]
    found = await run(
        db,
        upsert,
        new_id=uuid.uuid4(),
        builder_id=builder_id,
        platform=platform,
        external_id=external_id,
        new_display_name=display_name,
        new_wa_id=wa_id,
        new_user_id=user_id,
    )
    session_id: uuid.UUID = found[0][0]
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


_ACQUIRE_LEASE = (
    update(AgentSessionRow)
    .where(
        AgentSessionRow.id == bindparam("session_id"),
        or_(
            AgentSessionRow.lease_token.is_(None),
            AgentSessionRow.lease_expires_at < bindparam("now"),
        ),
    )
    .values(lease_token=bindparam("token"), lease_expires_at=bindparam("expires_at"))
    .returning(
        AgentSessionRow.id,
        exists().where(Turn.session_id == AgentSessionRow.id, Turn.status == TurnStatus.RUNNING),
    )
)


async def acquire_lease(
    session_id: uuid.UUID, *, ttl_seconds: float, db: AsyncSession
) -> Lease | None:
    """Take the conversation if nobody holds a live lease on it; returns the fencing
    token, and whether a turn of the conversation is unfinished (a crashed run, or one an
    operator retried), learnt in the same statement."""
    now = datetime.now(UTC)
    token = uuid.uuid4()
    taken = await run(
        db,
        _ACQUIRE_LEASE,
        session_id=session_id,
        now=now,
        token=token,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    return Lease(token, unfinished_turn=bool(taken[0][1])) if taken else None


_RENEW_LEASE = (
    update(AgentSessionRow)
    .where(
        AgentSessionRow.id == bindparam("session_id"),
        AgentSessionRow.lease_token == bindparam("token"),
    )
    .values(lease_expires_at=bindparam("expires_at"))
    .returning(AgentSessionRow.id)
)


async def renew_lease(
    session_id: uuid.UUID, token: uuid.UUID, *, ttl_seconds: float, db: AsyncSession
) -> None:
    """Extend our lease, sent with the transaction's next statement (`db.prepared.defer`);
    that statement raises `LeaseLostError` when the lease had expired and another
    holder took the conversation."""

    def renewed(rows: Rows) -> None:
        if not rows:
            raise LeaseLostError(f"session {session_id} is leased to another worker")

    expires_at = datetime.now(UTC) + timedelta(seconds=ttl_seconds)
    await defer(
        db, _RENEW_LEASE, check=renewed, session_id=session_id, token=token, expires_at=expires_at
    )


_RELEASE_LEASE = (
    update(AgentSessionRow)
    .where(
        AgentSessionRow.id == bindparam("session_id"),
        AgentSessionRow.lease_token == bindparam("token"),
    )
    .values(lease_token=None, lease_expires_at=None)
)


async def release_lease(session_id: uuid.UUID, token: uuid.UUID, *, db: AsyncSession) -> None:
    """In the caller's transaction, with its next statement or its commit (deferred)."""
    await defer(db, _RELEASE_LEASE, session_id=session_id, token=token)


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
