"""Activity per day, for the dashboard's charts: messages, turns, failed turns and the
median reply time, of one builder or of all of them.

Two aggregate queries, on Postgres and on the embedded SQLite alike: days are UTC
calendar days as `YYYY-MM-DD` text, and the median is picked with window functions
(SQLite has no `percentile_cont`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, case, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AgentSessionRow, InboundMessage, SessionItem, Turn, TurnStatus

CHART_DAYS = 14


@dataclass(frozen=True)
class DayActivity:
    day: date
    messages: int
    """Users' messages and the answers to them, as the conversation shows them."""
    turns: int
    failures: int
    """Turns that failed (retried ones included)."""
    median_reply_seconds: float | None
    """From the first message a turn answered arriving to its reply; None without one."""


def _day(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _epoch_seconds(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return extract("epoch", column)
    return func.julianday(column) * 86400.0


def _of_builder(query: Select[Any], session_id: Any, builder_id: uuid.UUID | None) -> Select[Any]:
    if builder_id is None:
        return query
    return query.join(AgentSessionRow, AgentSessionRow.id == session_id).where(
        AgentSessionRow.builder_id == builder_id
    )


async def daily_activity(
    builder_id: uuid.UUID | None, *, days: int = CHART_DAYS, db: AsyncSession
) -> list[DayActivity]:
    """The last `days` UTC days, oldest first, today included; every builder's when
    `builder_id` is None. Days without activity are there with zeros."""
    dialect = db.get_bind().dialect.name
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    since = datetime.combine(first, time(), tzinfo=UTC)

    message_day = _day(SessionItem.created_at, dialect).label("day")
    messages = _of_builder(
        select(message_day, func.count())
        .select_from(SessionItem)
        .where(
            SessionItem.created_at >= since,
            SessionItem.item_data["role"].as_string().in_(["user", "assistant"]),
        ),
        SessionItem.session_id,
        builder_id,
    ).group_by(message_day)
    counted = {day: count for day, count in await db.execute(messages)}

    first_arrival = (
        select(func.min(InboundMessage.received_at))
        .where(InboundMessage.turn_id == Turn.id)
        .scalar_subquery()
    )
    answered = (Turn.status == TurnStatus.REPLIED) & Turn.finished_at.is_not(None)
    seconds = case(
        (
            answered,
            _epoch_seconds(Turn.finished_at, dialect)
            - _epoch_seconds(func.coalesce(first_arrival, Turn.created_at), dialect),
        )
    )
    turns = _of_builder(
        select(
            _day(Turn.created_at, dialect).label("day"),
            case((Turn.status.in_([TurnStatus.FAILED, TurnStatus.RETRIED]), 1), else_=0).label(
                "failed"
            ),
            seconds.label("seconds"),
        ).where(Turn.created_at >= since, ~Turn.by_operator),
        Turn.session_id,
        builder_id,
    ).subquery()
    ranked = select(
        turns,
        func.row_number()
        .over(partition_by=[turns.c.day, turns.c.seconds.is_(None)], order_by=turns.c.seconds)
        .label("rank"),
        func.count(turns.c.seconds).over(partition_by=turns.c.day).label("timed"),
    ).subquery()
    middle = ranked.c.seconds.is_not(None) & or_(
        ranked.c.rank == (ranked.c.timed + 1) // 2, ranked.c.rank == (ranked.c.timed + 2) // 2
    )
    per_day = select(
        ranked.c.day,
        func.count(),
        func.sum(ranked.c.failed),
        func.avg(case((middle, ranked.c.seconds))),
    ).group_by(ranked.c.day)
    turned = {
        day: (count, int(failed or 0), None if median is None else float(median))
        for day, count, failed, median in await db.execute(per_day)
    }

    activity = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        key = day.isoformat()
        count, failed, median = turned.get(key, (0, 0, None))
        activity.append(DayActivity(day, counted.get(key, 0), count, failed, median))
    return activity
