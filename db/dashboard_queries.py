"""What the dashboard reads: builders at a glance, a builder's sessions (the inbox: their
`item_count`, last message, waiting and unread counts, what needs attention (by
`db.attention`'s rule), found by name, whole number or what was said), and a
conversation's items by keyset pages.

Every query runs on Postgres and on the embedded demo's SQLite.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    CompoundSelect,
    Select,
    Subquery,
    and_,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    union,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.types import Uuid

from db.activity import Tally, activity_today, sessions_per_builder
from db.attention import (
    WAITING_STATUSES,
    attention_candidates,
    attention_flags,
    attention_reasons,
    latest_turn_status,
    needs_attention,
    without_jit,
)
from db.core.clock import as_utc
from db.models import (
    AgentSessionRow,
    Builder,
    Channel,
    InboundMessage,
    OutboundMessage,
    SessionItem,
    Turn,
    TurnStatus,
)
from db.transcript import transcript_line

SESSION_SORTS: tuple[str, ...] = ("last_activity", "item_count", "user", "platform", "status")
SESSION_FILTERS: tuple[str, ...] = ("attention", "paused", "web")
MAX_PAGE = 200
COUNTED_EXACTLY = 10_000
"""A list of more sessions than this says about how many (Postgres's estimate): counting
a builder's 200,000 exactly on every page would cost more than the page itself."""
ATTENTION_COUNTED_EXACTLY = 1_000
"""A "needs attention" list of more candidates than this (`db.attention`) says about how
many (the candidates, to two digits): an exact count checks the rule on every one, some
6 µs each (4,000 of a busy builder's 200,000), where a page checks its own rows only."""

SEARCH_VECTOR = (
    "to_tsvector('simple'::regconfig, "
    "jsonb_path_query_array(item_data, "
    '\'$ ? (@.role == "user" || @.role == "assistant").content ? (@.type() == "string")\')'
    " || jsonb_path_query_array(item_data, "
    '\'$ ? (@.role == "user" || @.role == "assistant").content[*].text\'))'
)
"""What was said in an item, as Postgres searches it: the expression of the GIN index
`ix_session_items_search` (migration 0017), which the query must repeat exactly."""

_POSTGRES_SAID = text(
    f"SELECT session_id FROM session_items WHERE {SEARCH_VECTOR}"
    " @@ websearch_to_tsquery('simple'::regconfig, :said)"
).columns(session_id=Uuid())
_SQLITE_SAID = text(
    "SELECT session_id FROM session_items_fts WHERE session_items_fts MATCH :said"
).columns(session_id=Uuid())
_NUMBER = re.compile(r"(whatsapp:)?[\s+()./-]*\d[\d\s()./-]*", re.IGNORECASE)
"""A search made only of a number and how numbers are written: matched whole, nothing else."""


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
    started_at: datetime
    item_count: int
    last_activity: datetime
    status: str
    """`active`, `paused` or `failed turn` (its latest turn failed)."""
    last_message: SessionItem | None = None
    """Its latest user or assistant message (what the inbox previews)."""
    waiting: int = 0
    """Inbound messages not answered yet."""
    unread: int = 0
    """Inbound messages since an operator last opened the conversation."""
    attention: tuple[str, ...] = ()
    """Why it needs an operator (`db.attention.REASONS`)."""


@dataclass(frozen=True)
class SessionsPage:
    sessions: list[SessionSummary]
    total: int
    page: int
    per_page: int
    exact: bool = True
    """False when `total` is an estimate (more than `COUNTED_EXACTLY`, on Postgres)."""

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


async def builders_overview(*, db: AsyncSession) -> list[BuilderSummary]:
    """Every builder with its channels, sessions, messages stored today and turns failed
    today (its operators' included): counted by `db.activity` from what is rolled up and
    the rows made since, so the page costs the last minutes' rows, not all history."""
    today = await activity_today(db=db)
    sessions = await sessions_per_builder(db=db)
    rows = (await db.execute(select(Builder.id, Builder.name).order_by(Builder.name))).all()
    channels: dict[uuid.UUID, list[str]] = {}
    for builder_id, provider, address in await db.execute(
        select(Channel.builder_id, Channel.provider, Channel.address).order_by(Channel.created_at)
    ):
        channels.setdefault(builder_id, []).append(f"{provider} {address}")
    summaries = []
    for id_, name in rows:
        tally = today.get(id_, Tally())
        failures = tally.failures + tally.operator_failures
        summaries.append(
            BuilderSummary(
                id_, name, channels.get(id_, []), sessions.get(id_, 0), tally.messages, failures
            )
        )
    return summaries


@dataclass(frozen=True)
class _InboxColumns:
    """The per-session values of the inbox: the item count is `sessions.next_sequence`
    (items are numbered from 0 without gaps), the rest each a correlated subquery on an
    index led by `session_id`, so a page of 25 costs 25 short index reads per column, at
    any size; and its latest message, joined by `session_items_seq_unique`."""

    item_count: Any
    waiting: Any
    unread: Any
    last_message: ColumnElement[bool]
    """The join condition of its latest user or assistant message."""
    now: datetime

    def select(self) -> Select[Any]:
        """Rows for `_inbox_summary`."""
        return (
            select(
                AgentSessionRow,
                self.item_count,
                latest_turn_status(),
                self.waiting,
                self.unread,
                *attention_flags(self.now),
                SessionItem,
            )
            .select_from(AgentSessionRow)
            .outerjoin(SessionItem, self.last_message)
        )


def _inbox_columns(now: datetime) -> _InboxColumns:
    session_id = AgentSessionRow.id
    said = aliased(SessionItem)
    inbound = select(func.count()).select_from(InboundMessage)
    last_sequence = (
        select(said.sequence)
        .where(
            said.session_id == session_id,
            said.item_data["role"].as_string().in_(["user", "assistant"]),
        )
        .order_by(said.sequence.desc())
        .limit(1)
        .correlate(AgentSessionRow)
        .scalar_subquery()
    )
    return _InboxColumns(
        item_count=AgentSessionRow.next_sequence,
        waiting=inbound.where(
            InboundMessage.session_id == session_id,
            InboundMessage.status.in_(WAITING_STATUSES),
        ).scalar_subquery(),
        unread=inbound.where(
            InboundMessage.session_id == session_id,
            or_(
                AgentSessionRow.operator_seen_at.is_(None),
                InboundMessage.received_at > AgentSessionRow.operator_seen_at,
            ),
        ).scalar_subquery(),
        last_message=and_(
            SessionItem.session_id == session_id, SessionItem.sequence == last_sequence
        ),
        now=now,
    )


async def sessions_page(
    builder_id: uuid.UUID,
    *,
    search: str = "",
    show: str = "",
    sort: str = "last_activity",
    descending: bool = True,
    page: int = 1,
    per_page: int = 25,
    db: AsyncSession,
) -> SessionsPage:
    """One page of a builder's sessions, sorted, filtered (`show`: one of
    `SESSION_FILTERS`, or all) and searched by name, whole number or what was said: one
    query finds the page's ids and reads what the inbox shows of those rows alone (the
    per-session columns are never read for the rows a page skips); a second counts, only
    when the page is full or past the end (`_counted`). "Needs attention" sorts its
    `attention_candidates` alone and checks the rule on them in that order until the
    page is full; it counts them in the first query, and the ones the rule holds for in
    a second up to `ATTENTION_COUNTED_EXACTLY` of them (`_counted_attention`). Ties are
    broken by the id in the sort's direction, so that an index of migration 0021 read
    forwards or backwards gives the page; but users shown alike (`_shown_user`) stay in
    one order either way, which says nothing of what the list hides."""
    now = datetime.now(UTC)
    dialect = db.get_bind().dialect.name
    conditions: list[ColumnElement[bool]] = [AgentSessionRow.builder_id == builder_id]
    searched = _found_by(builder_id, search.strip(), dialect) if search.strip() else None
    if searched is not None:
        conditions.append(AgentSessionRow.id.in_(searched))
    if show == "paused":
        conditions.append(AgentSessionRow.paused_at.is_not(None))
    elif show == "web":
        conditions.append(AgentSessionRow.platform == "web")
    keys: dict[str, tuple[Any, ...]] = {
        "last_activity": (AgentSessionRow.updated_at,),
        "item_count": (AgentSessionRow.next_sequence,),
        "user": _shown_user(),
        "platform": (AgentSessionRow.platform,),
        "status": (AgentSessionRow.paused_at.is_not(None),),
    }
    sorted_by = keys.get(sort, keys["last_activity"])
    ties_descending = descending and sort != "user"
    order = [key.desc() if descending else key.asc() for key in sorted_by]
    order.append(AgentSessionRow.id.desc() if ties_descending else AgentSessionRow.id)
    page = max(1, page)
    skipped = (page - 1) * per_page
    found = None
    if show == "attention":
        await without_jit(db)
        candidate_ids = attention_candidates(builder_id, now)
        found = _keyed_candidates(candidate_ids, builder_id, searched, sorted_by, dialect)
        shown = _checked_in_order(
            found, needs_attention(now), descending, ties_descending, skipped, per_page
        )
    else:
        shown = (
            select(AgentSessionRow.id)
            .where(*conditions)
            .order_by(*order)
            .offset(skipped)
            .limit(per_page)
            .subquery()
        )
    query = _inbox_columns(now).select().join(shown, shown.c.id == AgentSessionRow.id)
    if found is not None:
        query = query.add_columns(select(func.count()).select_from(found).scalar_subquery())
    rows = (await db.execute(query.order_by(*order))).all()
    listed = [_inbox_summary(row[:-1] if found is not None else row) for row in rows]
    if 0 < len(listed) < per_page or (page == 1 and not listed):
        total, exact = skipped + len(listed), True
    elif found is not None:
        candidates = rows[0][-1] if rows else None
        read = skipped + len(listed) if listed else 0
        total, exact = await _counted_attention(found, now, candidates, at_least=read, db=db)
    else:
        read = skipped + len(listed) if listed else 0
        total, exact = await _counted(conditions, at_least=read, db=db)
    return SessionsPage(
        sessions=listed,
        total=total,
        page=page,
        per_page=per_page,
        exact=exact,
    )


def _keyed_candidates(
    candidate_ids: CompoundSelect[uuid.UUID],
    builder_id: uuid.UUID,
    searched: Any,
    sorted_by: tuple[Any, ...],
    dialect: str,
) -> CTE:
    """The builder's candidates (found by the `searched` ids, if any) with their sort
    keys, found before anything is sorted (`MATERIALIZED`). On Postgres each `sessions`
    row is read by its key (a `LATERAL` join): the planner would otherwise hash all of
    a builder's sessions to join a few thousand (31 ms of 200,000 where these take 13).
    The search runs once, outside, as in the unfiltered list. SQLite joins by key."""
    keyed = [key.label(f"key_{n}") for n, key in enumerate(sorted_by)]
    if dialect != "postgresql":
        found = select(AgentSessionRow.id, *keyed).where(
            AgentSessionRow.builder_id == builder_id, AgentSessionRow.id.in_(candidate_ids)
        )
        if searched is not None:
            found = found.where(AgentSessionRow.id.in_(searched))
        return found.cte("found").prefix_with("MATERIALIZED")
    candidates = candidate_ids.subquery()
    row = (
        select(AgentSessionRow.id, *keyed)
        .where(
            AgentSessionRow.id == candidates.c.session_id,
            AgentSessionRow.builder_id == builder_id,
        )
        .limit(1)  # one row by its key, and no join the planner could rewrite
        .lateral()
    )
    found = select(row).select_from(candidates.join(row, true()))
    if searched is not None:
        found = found.where(row.c.id.in_(searched))
    return found.cte("found").prefix_with("MATERIALIZED")


async def _counted_attention(
    found: CTE, now: datetime, candidates: int | None, *, at_least: int, db: AsyncSession
) -> tuple[int, bool]:
    """How many of `found` (the candidates) need attention, and whether exactly: the
    rule checked on each up to `ATTENTION_COUNTED_EXACTLY` candidates; beyond, about as
    many as the candidates (to two digits, never below `at_least`). `candidates` is
    their number when the page query read it (None: past the end, count them here)."""
    if candidates is None:
        candidates = await db.scalar(select(func.count()).select_from(found)) or 0
    if candidates > ATTENTION_COUNTED_EXACTLY:
        return max(_two_digits(candidates), at_least), False
    meeting = select(literal(1)).where(AgentSessionRow.id == found.c.id, needs_attention(now))
    counted = select(func.count()).select_from(found).where(meeting.exists())
    return await db.scalar(counted) or 0, True


def _checked_in_order(
    found: CTE,
    rule: ColumnElement[bool],
    descending: bool,
    ties_descending: bool,
    skipped: int,
    per_page: int,
) -> Subquery:
    """A page of `found` (its ids, sorted by its keys then the id) holding only those
    meeting `rule` (on their `sessions` row), checked in that order until the page is
    full: `OFFSET 0` keeps the sort below the check, so the rule runs on the page's rows
    and the ones before it, not on all of `found`."""
    order = [key.desc() if descending else key.asc() for key in found.c[1:]]
    order.append(found.c.id.desc() if ties_descending else found.c.id.asc())
    ordered = select(found.c.id).order_by(*order).offset(0).subquery()
    meets = select(literal(1)).where(AgentSessionRow.id == ordered.c.id, rule).exists()
    return select(ordered.c.id).where(meets).offset(skipped).limit(per_page).subquery()


async def _counted(
    conditions: list[ColumnElement[bool]], *, at_least: int, db: AsyncSession
) -> tuple[int, bool]:
    """How many sessions meet `conditions`, and whether exactly: up to `COUNTED_EXACTLY`
    by reading at most that many rows; beyond, on Postgres, the planner's estimate to
    two significant digits (never below `at_least`, the sessions up to this page)."""
    matching = select(literal(1)).select_from(AgentSessionRow).where(*conditions)
    if db.get_bind().dialect.name != "postgresql":
        return await db.scalar(select(func.count()).select_from(matching.subquery())) or 0, True
    capped = matching.limit(COUNTED_EXACTLY + 1).subquery()
    counted = await db.scalar(select(func.count()).select_from(capped)) or 0
    if counted <= COUNTED_EXACTLY:
        return counted, True
    estimate = _two_digits(await _planned_rows(matching, db=db))
    return max(estimate, at_least, COUNTED_EXACTLY + 1), False


async def _planned_rows(query: Select[Any], *, db: AsyncSession) -> int:
    """How many rows Postgres's planner expects `query` to return (its statistics)."""
    connection = await db.connection()
    compiled = query.compile(dialect=connection.dialect)
    plan = (
        await connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params)
    ).scalar_one()
    return int((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"])


def _two_digits(count: int) -> int:
    """`count` rounded to two significant digits: 201,345 is about 200,000."""
    return round(count, 2 - len(str(count))) if count >= 100 else count


def _found_by(builder_id: uuid.UUID, search: str, dialect: str) -> Any:
    """The ids of the sessions found: the builder's by a name by any part of it, a
    number or id only whole, however it is written; any by what was said, by whole
    words. The list masks most digits of a number (`mask_numbers`): a search that found
    a part of one would reveal them one guess at a time, so a search that looks like a
    number is matched as a number only. Each part by its index (the names' trigrams on
    Postgres, the ids' `lower(external_id)` and `wa_id`, what was said by `_said`)."""
    digits = re.sub(r"[^0-9]", "", search)
    # `+digits` has no letters: its lower-case match is the exact one.
    ids = [search.lower(), f"+{digits}"] if digits else [search.lower()]
    whole: list[ColumnElement[bool]] = [func.lower(AgentSessionRow.external_id).in_(ids)]
    if digits:
        whole.append(AgentSessionRow.wa_id == digits)
    builders = AgentSessionRow.builder_id == builder_id
    if _NUMBER.fullmatch(search):
        return select(AgentSessionRow.id).where(builders, or_(*whole))
    name = func.lower(func.coalesce(AgentSessionRow.display_name, literal_column("''")))
    by_name = select(AgentSessionRow.id).where(
        builders, or_(name.contains(search.lower(), autoescape=True), *whole)
    )
    said = _said(search, dialect)
    return by_name if said is None else union(by_name, said)


def _said(search: str, dialect: str) -> Any:
    """The ids of sessions in which some user or assistant message holds every word of
    `search` (Postgres: the GIN index on `SEARCH_VECTOR`; SQLite: the FTS5 table); None
    when `search` has no words."""
    if dialect == "postgresql":
        return _POSTGRES_SAID.bindparams(said=search)
    words = re.findall(r"\w+", search.lower())
    if not words:
        return None
    match = " AND ".join(f'"{word}"' for word in words)
    return _SQLITE_SAID.bindparams(said=match)


def _shown_user() -> tuple[Any, ...]:
    """Sort keys made of what the list shows of a user: the name, else the first four and
    last three characters of the id and its length, which masking always leaves; users
    shown alike stay in an order that says nothing about their hidden digits. The
    numbers are literals, as in the index `ix_sessions_builder_id_shown_user`."""
    external_id = AgentSessionRow.external_id
    length = func.length(external_id)
    return (
        func.coalesce(
            AgentSessionRow.display_name,
            func.substr(external_id, literal_column("1"), literal_column("4")),
        ),
        length,
        func.substr(external_id, length - literal_column("2")),
    )


def session_summary(
    row: AgentSessionRow,
    latest_status: str | None,
    *,
    item_count: int = 0,
    waiting: int = 0,
    unread: int = 0,
    attention: tuple[str, ...] = (),
    last_message: SessionItem | None = None,
) -> SessionSummary:
    """A session from its row and its latest turn's status, with what else was read of it."""
    return SessionSummary(
        id=row.id,
        builder_id=row.builder_id,
        platform=row.platform,
        external_id=row.external_id,
        display_name=row.display_name,
        started_at=as_utc(row.created_at),
        item_count=item_count,
        last_activity=as_utc(row.updated_at),
        status=session_status(row, latest_status),
        last_message=last_message,
        waiting=waiting,
        unread=unread,
        attention=attention,
    )


def _inbox_summary(found: Sequence[Any]) -> SessionSummary:
    """A row of `_InboxColumns.select`."""
    row, item_count, latest_status, waiting, unread, *flags, last_message = found
    return session_summary(
        row,
        latest_status,
        item_count=item_count,
        waiting=waiting,
        unread=unread,
        attention=attention_reasons(flags),
        last_message=last_message,
    )


def session_status(row: AgentSessionRow, latest_turn_status: str | None) -> str:
    if row.paused_at is not None:
        return "paused"
    if latest_turn_status == TurnStatus.FAILED:
        return "failed turn"
    return "active"


async def session_with_status(
    session_id: uuid.UUID, *, counts: bool = True, db: AsyncSession
) -> SessionSummary | None:
    """The session as the inbox sees it. Without `counts` (a page of entries needs only
    whose it is and its status) it is the primary-key lookup and the latest turn's
    status, by `ix_turns_session_id_created_at`: no item count, last message, counts or
    attention."""
    if not counts:
        found = (
            await db.execute(
                select(AgentSessionRow, latest_turn_status()).where(
                    AgentSessionRow.id == session_id
                )
            )
        ).first()
        return session_summary(*found) if found is not None else None
    query = _inbox_columns(datetime.now(UTC)).select().where(AgentSessionRow.id == session_id)
    row = (await db.execute(query)).first()
    return _inbox_summary(row) if row is not None else None


async def mark_seen(session_id: uuid.UUID, *, db: AsyncSession) -> None:
    """An operator has looked at the conversation: its unread count starts again."""
    await db.execute(
        update(AgentSessionRow)
        .where(AgentSessionRow.id == session_id)
        .values(operator_seen_at=datetime.now(UTC))
    )


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
    return in_input_order([owner, *inside] if owner is not None else inside)


def in_input_order(turns: Iterable[Turn]) -> list[Turn]:
    """Turns ordered by the sequence where their input starts (as `build_entries` reads them)."""
    return sorted(turns, key=lambda turn: (turn.input_sequence or 0, as_utc(turn.created_at)))


def _turns_owning_items() -> Select[Turn]:
    """`turns_owning`'s statement, of the item ids bound as `items`."""
    item = aliased(SessionItem)
    owner = (
        select(Turn.id)
        .where(Turn.session_id == item.session_id, Turn.input_sequence <= item.sequence)
        .order_by(Turn.input_sequence.desc(), Turn.created_at.desc())
        .limit(1)
        .correlate(item)
        .scalar_subquery()
    )
    owners = select(owner).where(item.id.in_(bindparam("items", expanding=True)))
    return select(Turn).where(Turn.id.in_(owners))


_TURNS_OWNING_ITEMS = _turns_owning_items()


async def turns_owning(items: Sequence[SessionItem], *, db: AsyncSession) -> list[Turn]:
    """The turn each item belongs to (of any conversations; the latest to start at or
    before it), in one query of one `ix_turns_session_id_input_sequence` read per item;
    one statement, built once, for any number of items (every inbox page previews with
    it: building it cost more than running it)."""
    if not items:
        return []
    ids = [found.id for found in items]
    return list(await db.scalars(_TURNS_OWNING_ITEMS, {"items": ids}))


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
    return latest_replies(
        await db.scalars(select(OutboundMessage).where(OutboundMessage.turn_id.in_(turn_ids)))
    )


def latest_replies(parts: Iterable[OutboundMessage]) -> dict[uuid.UUID, list[OutboundMessage]]:
    """`parts` by turn, only those of each turn's latest try, in order."""
    replies: dict[uuid.UUID, list[OutboundMessage]] = {}
    for reply in sorted(parts, key=lambda reply: (-reply.retry, reply.part)):
        found = replies.setdefault(reply.turn_id, [])
        if not found or found[0].retry == reply.retry:
            found.append(reply)
    return replies


@dataclass(frozen=True)
class ConversationOrigin:
    """What the conversation header says of where a conversation came from."""

    builder_name: str
    provider: str | None
    """`twilio` or `meta`: the provider of the business number it last arrived on."""
    business_number: str | None
    started_at: datetime
    first_words: str
    """The start of its first user message (a web chat's title)."""


async def conversation_origin(session_id: uuid.UUID, *, db: AsyncSession) -> ConversationOrigin:
    latest_channel = (
        select(InboundMessage.channel_id)
        .where(InboundMessage.session_id == session_id)
        .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    first_user_item = (
        select(SessionItem.item_data)
        .where(
            SessionItem.session_id == session_id,
            SessionItem.item_data["role"].as_string() == "user",
        )
        .order_by(SessionItem.sequence)
        .limit(1)
        .scalar_subquery()
    )
    row = (
        await db.execute(
            select(
                Builder.name,
                AgentSessionRow.created_at,
                first_user_item,
                Channel.provider,
                Channel.address,
            )
            .join(Builder, Builder.id == AgentSessionRow.builder_id)
            .outerjoin(Channel, Channel.id == latest_channel)
            .where(AgentSessionRow.id == session_id)
        )
    ).one()
    name, started_at, first_item, provider, address = row
    words = " ".join(transcript_line(first_item).text.split()) if first_item else ""
    return ConversationOrigin(
        builder_name=name,
        provider=provider,
        business_number=address,
        started_at=as_utc(started_at),
        first_words=words if len(words) <= 40 else words[:39] + "…",
    )


async def web_session_id(
    builder_id: uuid.UUID, conversation_id: str, *, db: AsyncSession
) -> uuid.UUID | None:
    """The session of a builder's web chat `conversation_id`, if it has started."""
    found: uuid.UUID | None = await db.scalar(
        select(AgentSessionRow.id).where(
            AgentSessionRow.builder_id == builder_id,
            AgentSessionRow.platform == "web",
            AgentSessionRow.external_id == conversation_id,
        )
    )
    return found
