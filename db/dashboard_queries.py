"""What the dashboard reads: builders at a glance, a builder's sessions with their
`item_count` from `session_items`, and a conversation's items by keyset pages.

Every query runs on Postgres and on the embedded demo's SQLite.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.core.clock import as_utc
from db.models import (
    AgentSessionRow,
    Builder,
    Channel,
    OutboundMessage,
    SessionItem,
    Turn,
    TurnStatus,
)

SESSION_SORTS: tuple[str, ...] = ("last_activity", "item_count", "user", "platform", "status")
MAX_PAGE = 200


@dataclass(frozen=True)
class BuilderSummary:
    id: uuid.UUID
    name: str
    channels: list[str]
    sessions: int
    messages_today: int
    failures_today: int


@dataclass(frozen=True)
class SessionSummary:
    id: uuid.UUID
    builder_id: uuid.UUID
    platform: str
    external_id: str
    display_name: str | None
    item_count: int
    last_activity: datetime
    status: str
    """`active`, `paused` or `failed turn` (its latest turn failed)."""


@dataclass(frozen=True)
class SessionsPage:
    sessions: list[SessionSummary]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _today_start() -> datetime:
    return datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)


async def builders_overview(*, db: AsyncSession) -> list[BuilderSummary]:
    """Every builder with its channels, sessions, messages stored today and turns failed today."""
    today = _today_start()
    sessions = (
        select(func.count())
        .select_from(AgentSessionRow)
        .where(AgentSessionRow.builder_id == Builder.id)
        .scalar_subquery()
    )
    messages = (
        select(func.count())
        .select_from(SessionItem)
        .join(AgentSessionRow, AgentSessionRow.id == SessionItem.session_id)
        .where(
            AgentSessionRow.builder_id == Builder.id,
            SessionItem.created_at >= today,
            SessionItem.item_data["role"].as_string().in_(["user", "assistant"]),
        )
        .scalar_subquery()
    )
    failures = (
        select(func.count())
        .select_from(Turn)
        .join(AgentSessionRow, AgentSessionRow.id == Turn.session_id)
        .where(
            AgentSessionRow.builder_id == Builder.id,
            Turn.created_at >= today,
            Turn.status.in_([TurnStatus.FAILED, TurnStatus.RETRIED]),
        )
        .scalar_subquery()
    )
    rows = (
        await db.execute(
            select(Builder.id, Builder.name, sessions, messages, failures).order_by(Builder.name)
        )
    ).all()
    channels: dict[uuid.UUID, list[str]] = {}
    for builder_id, provider, address in await db.execute(
        select(Channel.builder_id, Channel.provider, Channel.address).order_by(Channel.created_at)
    ):
        channels.setdefault(builder_id, []).append(f"{provider} {address}")
    return [
        BuilderSummary(id_, name, channels.get(id_, []), count, today_count, failed)
        for id_, name, count, today_count, failed in rows
    ]


def _latest_turn_status() -> Any:
    return (
        select(Turn.status)
        .where(Turn.session_id == AgentSessionRow.id)
        .order_by(Turn.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )


async def sessions_page(
    builder_id: uuid.UUID,
    *,
    search: str = "",
    sort: str = "last_activity",
    descending: bool = True,
    page: int = 1,
    per_page: int = 25,
    db: AsyncSession,
) -> SessionsPage:
    """One page of a builder's sessions, sorted and filtered by number or name."""
    item_count = (
        select(func.count())
        .select_from(SessionItem)
        .where(SessionItem.session_id == AgentSessionRow.id)
        .scalar_subquery()
    )
    latest_status = _latest_turn_status()
    query: Select[Any] = select(
        AgentSessionRow, item_count.label("item_count"), latest_status.label("latest_status")
    ).where(AgentSessionRow.builder_id == builder_id)
    if search.strip():
        query = query.where(_found_by(search.strip()))
    total = await db.scalar(select(func.count()).select_from(query.subquery())) or 0
    keys: dict[str, tuple[Any, ...]] = {
        "last_activity": (AgentSessionRow.updated_at,),
        "item_count": (item_count,),
        "user": _shown_user(),
        "platform": (AgentSessionRow.platform,),
        "status": (AgentSessionRow.paused_at.is_not(None),),
    }
    order = [
        key.desc() if descending else key.asc() for key in keys.get(sort, keys["last_activity"])
    ]
    query = query.order_by(*order, AgentSessionRow.id)
    page = max(1, page)
    rows = (await db.execute(query.offset((page - 1) * per_page).limit(per_page))).all()
    return SessionsPage(
        sessions=[_summary(row, count, status) for row, count, status in rows],
        total=total,
        page=page,
        per_page=per_page,
    )


def _found_by(search: str) -> ColumnElement[bool]:
    """A name by any part of it; a number or id only whole, however it is written. The
    list masks most digits of a number (`mask_numbers`): a search that found a part of
    one would reveal them one guess at a time."""
    digits = re.sub(r"[^0-9]", "", search)
    whole = [func.lower(AgentSessionRow.external_id) == search.lower()]
    if digits:
        whole += [AgentSessionRow.external_id == f"+{digits}", AgentSessionRow.wa_id == digits]
    name = func.lower(func.coalesce(AgentSessionRow.display_name, ""))
    return or_(name.contains(search.lower(), autoescape=True), *whole)


def _shown_user() -> tuple[Any, ...]:
    """Sort keys made of what the list shows of a user: the name, else the first four and
    last three characters of the id and its length, which masking always leaves; users
    shown alike stay in an order that says nothing about their hidden digits."""
    external_id = AgentSessionRow.external_id
    length = func.length(external_id)
    return (
        func.coalesce(AgentSessionRow.display_name, func.substr(external_id, 1, 4)),
        length,
        func.substr(external_id, length - 2),
    )


def _summary(row: AgentSessionRow, item_count: int, latest_status: str | None) -> SessionSummary:
    return SessionSummary(
        id=row.id,
        builder_id=row.builder_id,
        platform=row.platform,
        external_id=row.external_id,
        display_name=row.display_name,
        item_count=item_count,
        last_activity=as_utc(row.updated_at),
        status=session_status(row, latest_status),
    )


def session_status(row: AgentSessionRow, latest_turn_status: str | None) -> str:
    if row.paused_at is not None:
        return "paused"
    if latest_turn_status == TurnStatus.FAILED:
        return "failed turn"
    return "active"


async def session_with_status(session_id: uuid.UUID, *, db: AsyncSession) -> SessionSummary | None:
    item_count = (
        select(func.count())
        .select_from(SessionItem)
        .where(SessionItem.session_id == AgentSessionRow.id)
        .scalar_subquery()
    )
    row = (
        await db.execute(
            select(AgentSessionRow, item_count, _latest_turn_status()).where(
                AgentSessionRow.id == session_id
            )
        )
    ).first()
    return _summary(*row) if row is not None else None


async def items_page(
    session_id: uuid.UUID,
    *,
    after: int | None = None,
    before: int | None = None,
    limit: int = 50,
    db: AsyncSession,
) -> tuple[list[SessionItem], bool]:
    """Items in sequence order: those after `after`, else the latest before `before` (or
    the latest of all); and whether more lie beyond in the direction read."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(SessionItem).where(SessionItem.session_id == session_id)
    if after is not None:
        rows = list(
            await db.scalars(
                query.where(SessionItem.sequence > after)
                .order_by(SessionItem.sequence)
                .limit(limit + 1)
            )
        )
        return rows[:limit], len(rows) > limit
    if before is not None:
        query = query.where(SessionItem.sequence < before)
    newest_first = list(
        await db.scalars(query.order_by(SessionItem.sequence.desc()).limit(limit + 1))
    )
    return list(reversed(newest_first[:limit])), len(newest_first) > limit


async def turns_around(
    session_id: uuid.UUID, first: int, last: int, *, db: AsyncSession
) -> list[Turn]:
    """The turns whose items fall in `[first, last]`: those starting inside it and the one
    the first item belongs to, ordered by the sequence where their input starts."""
    inside = list(
        await db.scalars(
            select(Turn).where(
                Turn.session_id == session_id,
                Turn.input_sequence >= first,
                Turn.input_sequence <= last,
            )
        )
    )
    owner = await db.scalar(
        select(Turn)
        .where(Turn.session_id == session_id, Turn.input_sequence < first)
        .order_by(Turn.input_sequence.desc(), Turn.created_at.desc())
        .limit(1)
    )
    turns = [owner, *inside] if owner is not None else inside
    return sorted(turns, key=lambda turn: (turn.input_sequence or 0, as_utc(turn.created_at)))


async def unplaced_failures(session_id: uuid.UUID, *, db: AsyncSession) -> list[Turn]:
    """Failed turns whose input never reached `session_items` (nothing to pin them to)."""
    return list(
        await db.scalars(
            select(Turn)
            .where(
                Turn.session_id == session_id,
                Turn.status == TurnStatus.FAILED,
                Turn.input_sequence.is_(None),
            )
            .order_by(Turn.created_at)
        )
    )


async def replies_of_turns(
    turn_ids: list[uuid.UUID], *, db: AsyncSession
) -> dict[uuid.UUID, list[OutboundMessage]]:
    """Each turn's reply parts, of its latest try that recorded a reply (after an
    operator's retry, the newest answer's; the fallback's while no retry answered)."""
    if not turn_ids:
        return {}
    replies: dict[uuid.UUID, list[OutboundMessage]] = {}
    for reply in await db.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.turn_id.in_(turn_ids))
        .order_by(OutboundMessage.retry.desc(), OutboundMessage.part)
    ):
        parts = replies.setdefault(reply.turn_id, [])
        if not parts or parts[0].retry == reply.retry:
            parts.append(reply)
    return replies
