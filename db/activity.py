"""Activity per day, for the dashboard's charts: messages, turns, failed turns and the
median reply time, of one builder or of all of them.

Read from what the database keeps per builder and UTC day as rows are stored
(`activity_days`, and `reply_times`: how many turns replied in each tenth of a second,
since a median is not additive and a histogram is; triggers of migration 0020), so a
chart costs its days times its builders, not the messages those days held. The median is
that of the reply times in tenths of a second, the precision the chart shows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ActivityDay, ReplyTime

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


async def daily_activity(
    builder_id: uuid.UUID | None, *, days: int = CHART_DAYS, db: AsyncSession
) -> list[DayActivity]:
    """The last `days` UTC days, oldest first, today included; every builder's when
    `builder_id` is None. Days without activity are there with zeros."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=days - 1)
    counts = (
        select(
            ActivityDay.day,
            func.sum(ActivityDay.messages),
            func.sum(ActivityDay.turns),
            func.sum(ActivityDay.failures),
        )
        .where(ActivityDay.day >= first)
        .group_by(ActivityDay.day)
    )
    replies = (
        select(ReplyTime.day, ReplyTime.tenths, func.sum(ReplyTime.turns))
        .where(ReplyTime.day >= first, ReplyTime.turns > 0)
        .group_by(ReplyTime.day, ReplyTime.tenths)
    )
    if builder_id is not None:
        counts = counts.where(ActivityDay.builder_id == builder_id)
        replies = replies.where(ReplyTime.builder_id == builder_id)
    counted = {
        _as_date(day): (int(messages), int(turns), int(failures))
        for day, messages, turns, failures in await db.execute(counts)
    }
    histograms: dict[date, list[tuple[int, int]]] = defaultdict(list)
    for day, tenths, turns in await db.execute(replies):
        histograms[_as_date(day)].append((tenths, int(turns)))

    activity = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        messages, turns, failures = counted.get(day, (0, 0, 0))
        median = _median_tenths(histograms.get(day, []))
        seconds = None if median is None else median / 10
        activity.append(DayActivity(day, messages, turns, failures, seconds))
    return activity


def _as_date(day: date | str) -> date:
    """A `day` as read: a date (SQLite hands back text from a grouped column)."""
    return day if isinstance(day, date) else date.fromisoformat(day)


def _median_tenths(histogram: list[tuple[int, int]]) -> float | None:
    """The median of a histogram of (value, how many): the middle value, or the mean of
    the two middle ones; None when it is empty."""
    ordered = sorted(histogram)
    total = sum(count for _, count in ordered)
    if not total:
        return None
    wanted = ((total + 1) // 2, (total + 2) // 2)
    middle: list[int] = []
    seen = 0
    for value, count in ordered:
        seen += count
        middle += [value] * sum(1 for rank in wanted if seen - count < rank <= seen)
        if len(middle) == len(wanted):
            break
    return sum(middle) / len(middle)
