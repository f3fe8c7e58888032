"""The inbox at a glance for operators: messages waiting, being answered or failed, by age."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.core.clock import as_utc
from db.inbox import status_in
from db.models import InboundMessage, InboundStatus

STATUSES = (InboundStatus.PENDING, InboundStatus.PROCESSING, InboundStatus.FAILED)
AGES: tuple[tuple[str, timedelta], ...] = (
    ("under_1m", timedelta(minutes=1)),
    ("under_1h", timedelta(hours=1)),
    ("under_1d", timedelta(days=1)),
)
"""Age brackets; a message older than the last one counts as `older`."""


@dataclass(frozen=True)
class Backlog:
    status: str
    total: int
    by_age: dict[str, int]
    """Counts per bracket of `AGES`, then `older`."""
    oldest: datetime | None


async def inbox_backlog(*, db: AsyncSession, now: datetime | None = None) -> list[Backlog]:
    """One row per status of `STATUSES` (zeros included), in one query."""
    now = now or datetime.now(UTC)
    within = [
        func.sum(case((InboundMessage.received_at >= now - age, 1), else_=0)) for _, age in AGES
    ]
    rows = await db.execute(
        select(
            InboundMessage.status,
            func.count(),
            *within,
            func.min(InboundMessage.received_at),
        )
        .where(status_in(STATUSES))
        .group_by(InboundMessage.status)
    )
    found = {row[0]: row for row in rows}
    backlog = []
    for status in STATUSES:
        row = found.get(status)
        if row is None:
            backlog.append(Backlog(status, 0, {**{n: 0 for n, _ in AGES}, "older": 0}, None))
            continue
        total, cumulative, oldest = int(row[1]), [int(n or 0) for n in row[2:-1]], row[-1]
        brackets = [cumulative[0], *(b - a for a, b in pairwise(cumulative))]
        by_age = {name: count for (name, _), count in zip(AGES, brackets, strict=True)}
        by_age["older"] = total - cumulative[-1]
        backlog.append(Backlog(status, total, by_age, as_utc(oldest) if oldest else None))
    return backlog


@dataclass(frozen=True)
class Waiting:
    """Messages not answered yet (pending or being answered), for the metrics scrape."""

    count: int
    oldest: datetime | None


async def inbox_waiting(*, db: AsyncSession) -> Waiting:
    """How many messages wait and since when, in one query."""
    count, oldest = (
        await db.execute(
            select(func.count(), func.min(InboundMessage.received_at)).where(
                status_in((InboundStatus.PENDING, InboundStatus.PROCESSING))
            )
        )
    ).one()
    return Waiting(int(count), as_utc(oldest) if oldest else None)
