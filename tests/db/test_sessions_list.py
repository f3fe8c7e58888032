"""A builder's sessions list at scale: each sort reads its page in the order of an index
(migration 0021), a search finds names, numbers and ids by index what a scan finds, and
a long list says about how many sessions it holds instead of counting them all."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import dashboard_queries
from db.builders import create_builder
from db.dashboard_queries import sessions_page
from db.engine import create_sessionmaker
from db.models import AgentSessionRow
from tests.queries import statements_run

NAMES = ("Ada", "ada lovelace", "Grace", None, "Linus", None, "Hopper")


async def a_list(sessions: async_sessionmaker[AsyncSession], count: int = 21) -> uuid.UUID:
    """A builder with `count` sessions: names repeating (some none, shown by number),
    item counts tied in fours, activity a minute apart."""
    now = datetime.now(UTC)
    async with sessions.begin() as db:
        builder = await create_builder(name="b", instructions="i", model="m", db=db)
        for n in range(count):
            db.add(
                AgentSessionRow(
                    builder_id=builder.id,
                    platform="whatsapp",
                    external_id=f"+3161230{n:04d}",
                    wa_id=f"3161230{n:04d}",
                    display_name=NAMES[n % len(NAMES)],
                    next_sequence=n // 4,
                    updated_at=now - timedelta(minutes=n),
                )
            )
        return builder.id


def expected(rows: list[AgentSessionRow], sort: str, descending: bool) -> list[uuid.UUID]:
    """The list's order, computed here: ties by id in the sort's direction, but users
    shown alike always by id ascending."""

    def key(row: AgentSessionRow) -> tuple[Any, ...]:
        if sort == "item_count":
            return (row.next_sequence,)
        if sort == "user":
            shown = row.display_name or row.external_id[:4]
            return (shown, len(row.external_id), row.external_id[-3:])
        return (row.updated_at,)

    ordered = sorted(rows, key=lambda row: (key(row), str(row.id)), reverse=descending)
    if sort == "user" and descending:
        ordered = sorted(rows, key=lambda row: str(row.id))
        ordered.sort(key=key, reverse=True)
    return [row.id for row in ordered]


@pytest.mark.parametrize(
    ("sort", "descending", "index"),
    [
        ("last_activity", True, "ix_sessions_builder_id_updated_at"),
        ("last_activity", False, "ix_sessions_builder_id_updated_at"),
        ("item_count", True, "ix_sessions_builder_id_next_sequence"),
        ("item_count", False, "ix_sessions_builder_id_next_sequence"),
        ("user", False, "ix_sessions_builder_id_shown_user"),
        ("user", True, "ix_sessions_builder_id_shown_user"),
    ],
)
async def test_each_sort_pages_in_the_order_of_its_index(
    db_sessions: async_sessionmaker[AsyncSession], sort: str, descending: bool, index: str
) -> None:
    """Every session once, in the list's order, page by page; and the page query reads
    the index in order: with sorting priced out, what its `Limit` takes is the index
    scan, not a `Sort` of the builder's sessions (an `Incremental Sort` orders only users
    shown alike, by id); only the page's rows are sorted again, with their details."""
    builder = await a_list(db_sessions)
    engine = db_sessions.kw["bind"]
    with statements_run(engine) as statements:
        async with db_sessions() as db:
            pages = [
                await sessions_page(
                    builder, sort=sort, descending=descending, page=n, per_page=5, db=db
                )
                for n in range(1, 6)
            ]
    async with db_sessions() as db:
        rows = list(await db.scalars(select(AgentSessionRow)))
    async with engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        await conn.exec_driver_sql("SET LOCAL enable_sort = off")
        statement, parameters = statements[0]
        plan = "\n".join((await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)).scalars())
    listed = [session.id for listing in pages for session in listing.sessions]
    assert listed == expected(rows, sort, descending)
    assert [(listing.total, listing.exact) for listing in pages] == [(21, True)] * 5
    below_limit = [line for line in plan.partition("Limit")[2].splitlines() if "->" in line]
    assert index in below_limit[0] or (
        "Incremental Sort" in below_limit[0] and index in below_limit[1]
    ), plan


async def test_search_finds_by_index_what_a_scan_finds(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Names by any part, in any case; numbers and ids whole, however written: the same
    sessions with scans allowed and with scans priced out (then by the trigram index on
    names, `lower(external_id)` and `wa_id`)."""
    builder = await a_list(db_sessions)
    engine = db_sessions.kw["bind"]
    searches = ("ADA", "love", "race", "+31612300003", "31 6123 00003", "+3161230000", "nobody")

    async def found(setting: str) -> list[list[str]]:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f"SET enable_seqscan = {setting}")
            db = AsyncSession(bind=conn)
            results = [
                sorted(
                    s.display_name or s.external_id
                    for s in (await sessions_page(builder, search=q, db=db)).sessions
                )
                for q in searches
            ]
            await conn.exec_driver_sql("RESET enable_seqscan")
            return results

    by_scan, by_index = await found("on"), await found("off")
    async with engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        names, numbers = [
            "\n".join(
                (
                    await conn.exec_driver_sql(
                        "EXPLAIN SELECT id FROM sessions WHERE " + condition, (search,)
                    )
                ).scalars()
            )
            for condition, search in (
                ("lower(coalesce(display_name, '')) LIKE '%%' || %s || '%%'", "ada"),
                ("lower(external_id) IN (%s)", "+31612300003"),
            )
        ]
    assert by_scan == by_index
    assert by_index == [
        ["Ada", "Ada", "Ada", "ada lovelace", "ada lovelace", "ada lovelace"],
        ["ada lovelace", "ada lovelace", "ada lovelace"],
        ["Grace", "Grace", "Grace"],
        ["+31612300003"],
        ["+31612300003"],
        [],
        [],
    ]
    assert "ix_sessions_name_trigrams" in names, names
    assert "ix_sessions_external_id_lower" in numbers, numbers


async def test_a_long_list_says_about_how_many_and_a_short_one_exactly(
    db_sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `COUNTED_EXACTLY` sessions the total is the planner's estimate (marked not
    exact, never fewer than the pages read so far); a search that finds fewer, and the
    last page of any list, are exact."""
    monkeypatch.setattr(dashboard_queries, "COUNTED_EXACTLY", 10)
    builder = await a_list(db_sessions, count=30)
    engine: AsyncEngine = db_sessions.kw["bind"]
    async with engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE sessions")
    async with db_sessions() as db:
        first = await sessions_page(builder, per_page=5, db=db)
        deep = await sessions_page(builder, page=40, per_page=5, db=db)
        last = await sessions_page(builder, page=5, per_page=7, db=db)
        searched = await sessions_page(builder, search="Grace", per_page=2, db=db)
    assert (first.total, first.exact, first.pages) == (30, False, 6)
    assert (deep.sessions, deep.total, deep.exact) == ([], 30, False)
    assert (len(last.sessions), last.total, last.exact) == (2, 30, True)
    assert (searched.total, searched.exact, searched.pages) == (4, True, 2)


async def test_the_embedded_sqlite_counts_exactly(
    sqlite_engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite has no planner estimate to offer: the demo's list counts every session."""
    monkeypatch.setattr(dashboard_queries, "COUNTED_EXACTLY", 10)
    sessions = create_sessionmaker(sqlite_engine)
    builder = await a_list(sessions, count=30)
    async with sessions() as db:
        first = await sessions_page(builder, sort="user", per_page=5, db=db)
        searched = await sessions_page(builder, search="love", db=db)
        await db.execute(delete(AgentSessionRow).where(AgentSessionRow.builder_id == builder))
        await db.commit()
    assert (first.total, first.exact) == (30, True)
    assert len(searched.sessions) == 5
