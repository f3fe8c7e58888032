"""Activity per builder and UTC day, for the dashboard's charts and builders page:
messages, turns, failed turns and the median reply time.

What is settled is rolled up off the path that stores messages (`roll_up_activity`,
which the worker's sweeper runs every period) into `activity_days` and `reply_times`
(how many bot turns replied in each tenth of a second: a median is not additive, a
histogram is), up to the watermark `activity_rollup.rolled_up_to`: the start of the
minute `SETTLED_AFTER` ago, held back to the oldest bot turn still running. A page reads
those rows and counts live only what was made since the watermark (a few minutes of
rows), with the same queries the roll-up stores: what it costs depends on how busy the
last minutes were, not on how much the last two weeks held. The median is that of the
reply times in tenths of a second, the precision the chart shows.

The rows keep what happened: deleting a conversation (or clearing its memory) leaves its
messages and turns counted on the days rolled up already, and a turn an operator retries
days after it failed stays a failure of the day it failed. Every query runs on Postgres
and on the embedded SQLite alike.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Select,
    and_,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.core.clock import as_utc
from db.models import (
    ActivityDay,
    ActivityRollup,
    AgentSessionRow,
    Builder,
    InboundMessage,
    ReplyTime,
    SessionCount,
    SessionItem,
    Turn,
    TurnStatus,
)
from db.upsert import insert_or_ignore, upsert

CHART_DAYS = 14

SETTLED_AFTER = timedelta(minutes=3)
"""How long after it was made a row counts as it will, but for a bot turn still running:
an item or a session is committed moments after the transaction that stamped its
`created_at` began, and an operator's reply (a turn made replied) is sent or failed
within its HTTP timeouts."""

LONGEST_TURN = timedelta(minutes=15)
"""How long a running bot turn holds the roll-up back (its status and `finished_at`
change when it ends): its tries (`RUN_TIMEOUT_SECONDS` each, `TURN_MAX_ATTEMPTS` of them,
a lease handed over between them) end well within it. One running longer (its workers
gone) is rolled up as it stands: a turn without a reply time, not a failure."""

FAILED = (TurnStatus.FAILED, TurnStatus.RETRIED)
"""A failed turn, as the charts count it (retried ones included)."""


@dataclass(frozen=True)
class DayActivity:
    day: date
    messages: int
    """Users' messages and the answers to them, as the conversation shows them."""
    turns: int
    failures: int
    """Bot turns that failed (retried ones included)."""
    median_reply_seconds: float | None
    """From the first message a turn answered arriving to its reply, to a tenth of a
    second; None without one."""


@dataclass
class Tally:
    """A builder's activity on a day."""

    messages: int = 0
    turns: int = 0
    """Bot turns (an operator's replies are turns too, not counted here)."""
    failures: int = 0
    """Bot turns that failed."""
    operator_failures: int = 0
    """Operators' replies that did not get out."""
    reply_tenths: Counter[int] = field(default_factory=Counter)
    """How many bot turns replied in so many tenths of a second."""

    def add_turns(self, turns: int, failures: int, operator_failures: int) -> None:
        self.turns += int(turns)
        self.failures += int(failures)
        self.operator_failures += int(operator_failures)


def _day(column: Any, dialect: str) -> Any:
    """The UTC day of a timestamp (SQLite's are stored as UTC text)."""
    if dialect == "postgresql":
        return cast(func.timezone(literal_column("'UTC'"), column), Date)
    return func.date(column, type_=Date)


def _epoch_seconds(column: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return extract("epoch", column)
    return func.julianday(column) * 86400.0


def _within(column: Any, start: datetime, end: datetime | None) -> Any:
    return column >= start if end is None else and_(column >= start, column < end)


def _counted_messages(start: datetime, end: datetime | None, dialect: str) -> Select[Any]:
    """Users' and agent's messages made in [start, end) per builder and day."""
    made = (
        select(
            AgentSessionRow.builder_id.label("builder_id"),
            _day(SessionItem.created_at, dialect).label("day"),
        )
        .select_from(SessionItem)
        .join(AgentSessionRow, AgentSessionRow.id == SessionItem.session_id)
        .where(
            _within(SessionItem.created_at, start, end),
            SessionItem.item_data["role"].as_string().in_(["user", "assistant"]),
        )
        .subquery()
    )
    return select(made.c.builder_id, made.c.day, func.count().label("messages")).group_by(
        made.c.builder_id, made.c.day
    )


def _counted_turns(start: datetime, end: datetime | None, dialect: str) -> Select[Any]:
    """Bot turns, their failures and operators' failed turns made in [start, end) per
    builder and day."""
    failed = Turn.status.in_(FAILED)
    made = (
        select(
            AgentSessionRow.builder_id.label("builder_id"),
            _day(Turn.created_at, dialect).label("day"),
            case((~Turn.by_operator, 1), else_=0).label("turn"),
            case((~Turn.by_operator & failed, 1), else_=0).label("failure"),
            case((Turn.by_operator & failed, 1), else_=0).label("operator_failure"),
        )
        .join(AgentSessionRow, AgentSessionRow.id == Turn.session_id)
        .where(_within(Turn.created_at, start, end))
        .subquery()
    )
    return select(
        made.c.builder_id,
        made.c.day,
        func.sum(made.c.turn).label("turns"),
        func.sum(made.c.failure).label("failures"),
        func.sum(made.c.operator_failure).label("operator_failures"),
    ).group_by(made.c.builder_id, made.c.day)


def _counted_reply_times(start: datetime, end: datetime | None, dialect: str) -> Select[Any]:
    """How many bot turns made in [start, end) replied in so many tenths of a second, per
    builder and day: from the first message a turn answered arriving (its own start when
    it answered none) to its reply."""
    first_arrival = (
        select(func.min(InboundMessage.received_at))
        .where(InboundMessage.turn_id == Turn.id)
        .scalar_subquery()
    )
    seconds = _epoch_seconds(Turn.finished_at, dialect) - _epoch_seconds(
        func.coalesce(first_arrival, Turn.created_at), dialect
    )
    made = (
        select(
            AgentSessionRow.builder_id.label("builder_id"),
            _day(Turn.created_at, dialect).label("day"),
            cast(func.round(seconds * 10), Integer).label("tenths"),
        )
        .join(AgentSessionRow, AgentSessionRow.id == Turn.session_id)
        .where(
            _within(Turn.created_at, start, end),
            ~Turn.by_operator,
            Turn.status == TurnStatus.REPLIED,
            Turn.finished_at.is_not(None),
        )
        .subquery()
    )
    return select(
        made.c.builder_id, made.c.day, made.c.tenths, func.count().label("turns")
    ).group_by(made.c.builder_id, made.c.day, made.c.tenths)


def _counted_sessions(start: datetime | None, end: datetime) -> Select[uuid.UUID, int]:
    """Sessions made in [start, end) per builder; all made before `end` without `start`."""
    made = AgentSessionRow.created_at < end
    if start is not None:
        made = and_(made, AgentSessionRow.created_at >= start)
    return (
        select(AgentSessionRow.builder_id, func.count().label("sessions"))
        .where(made)
        .group_by(AgentSessionRow.builder_id)
    )


async def roll_up_activity(*, db: AsyncSession, now: datetime) -> datetime:
    """Add the rows made since the watermark up to the start of the minute
    `SETTLED_AFTER` ago (or of the oldest bot turn still running, if it started since,
    within `LONGEST_TURN`) to `activity_days` and `reply_times` (and the sessions made to
    `session_counts`), and move the watermark there; returns it. In the caller's
    transaction, under a lock on the watermark's row (on Postgres; SQLite has one
    writer), so sweepers of several workers roll up each row once. The first roll-up
    starts `CHART_DAYS` days back (older days are never shown), and counts every session
    made before."""
    await db.execute(insert_or_ignore(ActivityRollup, db=db).values(id=1, rolled_up_to=None))
    rolled_up_to = await db.scalar(
        select(ActivityRollup.rolled_up_to).where(ActivityRollup.id == 1).with_for_update()
    )
    if rolled_up_to is None:
        first = now.astimezone(UTC).date() - timedelta(days=CHART_DAYS - 1)
        start = datetime.combine(first, time(), tzinfo=UTC)
    else:
        start = as_utc(rolled_up_to)
    settled = now.astimezone(UTC) - SETTLED_AFTER
    if settled <= start:
        return start
    oldest_running = await db.scalar(
        select(func.min(Turn.created_at)).where(
            Turn.created_at >= max(start, now - LONGEST_TURN),
            Turn.status == TurnStatus.RUNNING,
            ~Turn.by_operator,
        )
    )
    if oldest_running is not None:
        settled = min(settled, as_utc(oldest_running))
    until = settled.replace(second=0, microsecond=0)
    if until <= start:
        return start
    dialect = db.get_bind().dialect.name
    await _add_up(ActivityDay, _counted_messages(start, until, dialect), db=db)
    await _add_up(ActivityDay, _counted_turns(start, until, dialect), db=db)
    await _add_up(ReplyTime, _counted_reply_times(start, until, dialect), db=db)
    sessions = _counted_sessions(None if rolled_up_to is None else start, until)
    await _add_up(SessionCount, sessions, db=db)
    await db.execute(
        update(ActivityRollup).where(ActivityRollup.id == 1).values(rolled_up_to=until)
    )
    return until


async def _add_up(model: Any, counted: Select[*tuple[Any, ...]], *, db: AsyncSession) -> None:
    """Add `counted`'s rows to the rows of `model` with the same key, inserting those that
    are new: its columns are named as `model`'s, its key's and the counts to add."""
    keys = [column.name for column in model.__table__.primary_key.columns]
    columns = [column.name for column in counted.selected_columns]
    added = upsert(model, db=db).from_select(columns, counted)
    await db.execute(
        added.on_conflict_do_update(
            index_elements=keys,
            set_={
                name: getattr(model, name) + added.excluded[name]
                for name in columns
                if name not in keys
            },
        )
    )


async def _watermark(db: AsyncSession) -> datetime | None:
    rolled_up_to = await db.scalar(
        select(ActivityRollup.rolled_up_to).where(ActivityRollup.id == 1)
    )
    return None if rolled_up_to is None else as_utc(rolled_up_to)


async def _tallies(
    since: datetime,
    *,
    by: Literal["day", "builder_id"],
    builder_id: uuid.UUID | None = None,
    reply_times: bool,
    db: AsyncSession,
) -> dict[Any, Tally]:
    """The activity from `since` (the start of a day) on, summed per day or per builder
    (`by`), of one builder when `builder_id` is given: the rolled-up days merged with
    what was made since the watermark. `reply_times`: with the histograms (the median's),
    summed in the database (a row per value, not per builder and value)."""
    dialect = db.get_bind().dialect.name
    rolled_up_to = await _watermark(db)
    live_from = since if rolled_up_to is None else max(since, rolled_up_to)
    tallies: dict[Any, Tally] = {}

    def tally(key: Any) -> Tally:
        if by == "day" and isinstance(key, str):  # SQLite's dates, from a grouped column
            key = date.fromisoformat(key)
        return tallies.setdefault(key, Tally())

    def of_builder(column: Any) -> ColumnElement[bool]:
        return true() if builder_id is None else column == builder_id

    if live_from > since:
        kept_key = getattr(ActivityDay, by)
        kept = (
            select(
                kept_key,
                func.sum(ActivityDay.messages),
                func.sum(ActivityDay.turns),
                func.sum(ActivityDay.failures),
                func.sum(ActivityDay.operator_failures),
            )
            .where(ActivityDay.day >= since.date(), of_builder(ActivityDay.builder_id))
            .group_by(kept_key)
        )
        for key, messages, *turns in await db.execute(kept):
            tally(key).messages += int(messages)
            tally(key).add_turns(*turns)
        if reply_times:
            kept_times_key = getattr(ReplyTime, by)
            kept_times = (
                select(kept_times_key, ReplyTime.tenths, func.sum(ReplyTime.turns))
                .where(ReplyTime.day >= since.date(), of_builder(ReplyTime.builder_id))
                .group_by(kept_times_key, ReplyTime.tenths)
            )
            for key, tenths, turns in await db.execute(kept_times):
                tally(key).reply_tenths[tenths] += int(turns)

    recent = _counted_messages(live_from, None, dialect).subquery()
    live_messages = (
        select(recent.c[by], func.sum(recent.c.messages))
        .where(of_builder(recent.c.builder_id))
        .group_by(recent.c[by])
    )
    for key, messages in await db.execute(live_messages):
        tally(key).messages += int(messages)
    recent = _counted_turns(live_from, None, dialect).subquery()
    live_turns = (
        select(
            recent.c[by],
            func.sum(recent.c.turns),
            func.sum(recent.c.failures),
            func.sum(recent.c.operator_failures),
        )
        .where(of_builder(recent.c.builder_id))
        .group_by(recent.c[by])
    )
    for key, *turns in await db.execute(live_turns):
        tally(key).add_turns(*turns)
    if reply_times:
        recent = _counted_reply_times(live_from, None, dialect).subquery()
        live_replies = (
            select(recent.c[by], recent.c.tenths, func.sum(recent.c.turns))
            .where(of_builder(recent.c.builder_id))
            .group_by(recent.c[by], recent.c.tenths)
        )
        for key, tenths, turns in await db.execute(live_replies):
            tally(key).reply_tenths[tenths] += int(turns)
    return tallies


async def activity_today(*, db: AsyncSession) -> dict[uuid.UUID, Tally]:
    """Each builder's activity of today (UTC) so far, without reply times: what the
    builders page lists."""
    today = datetime.combine(datetime.now(UTC).date(), time(), tzinfo=UTC)
    return await _tallies(today, by="builder_id", reply_times=False, db=db)


async def sessions_per_builder(*, db: AsyncSession) -> dict[uuid.UUID, int]:
    """How many sessions each builder has: those made before the watermark as rolled up
    (`session_counts`), and those made since, by `ix_sessions_builder_id_updated_at` (a
    session's `updated_at` is never before its `created_at`): a read per builder of the
    last minutes' sessions, not of all of them. Sessions are deleted only with their
    builder, whose count goes with it."""
    rolled_up_to = await _watermark(db)
    if rolled_up_to is None:
        counted = select(AgentSessionRow.builder_id, func.count()).group_by(
            AgentSessionRow.builder_id
        )
        return {builder: count for builder, count in await db.execute(counted)}
    since = (
        select(func.count())
        .select_from(AgentSessionRow)
        .where(
            AgentSessionRow.builder_id == Builder.id,
            AgentSessionRow.updated_at >= rolled_up_to,
            AgentSessionRow.created_at >= rolled_up_to,
        )
        .correlate(Builder)
        .scalar_subquery()
    )
    counted_all = select(Builder.id, func.coalesce(SessionCount.sessions, 0) + since).outerjoin(
        SessionCount, SessionCount.builder_id == Builder.id
    )
    return {builder: int(count) for builder, count in await db.execute(counted_all)}


async def daily_activity(
    builder_id: uuid.UUID | None, *, days: int = CHART_DAYS, db: AsyncSession
) -> list[DayActivity]:
    """The last `days` UTC days (at most `CHART_DAYS`: older ones are not rolled up),
    oldest first, today included; every builder's when `builder_id` is None. Days without
    activity are there with zeros."""
    first = datetime.now(UTC).date() - timedelta(days=days - 1)
    per_day = await _tallies(
        datetime.combine(first, time(), tzinfo=UTC),
        by="day",
        builder_id=builder_id,
        reply_times=True,
        db=db,
    )
    activity = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        counted = per_day.get(day, Tally())
        median = _median(counted.reply_tenths)
        seconds = None if median is None else median / 10
        activity.append(
            DayActivity(day, counted.messages, counted.turns, counted.failures, seconds)
        )
    return activity


def _median(histogram: Counter[int]) -> float | None:
    """The median of a histogram (value: how many): the middle value, or the mean of the
    two middle ones; None when it is empty."""
    total = sum(histogram.values())
    if not total:
        return None
    wanted = sorted({(total + 1) // 2, (total + 2) // 2})
    middle: list[int] = []
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        while wanted and wanted[0] <= seen:
            middle.append(value)
            wanted.pop(0)
        if not wanted:
            break
    return sum(middle) / len(middle)
