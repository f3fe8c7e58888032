"""Deferred statements (`db.prepared.defer`) run once, in the order they were issued,
before anything else the transaction runs, or not at all when it rolls back; on both
databases."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.engine import create_sessionmaker
from db.models import AgentSessionRow
from db.prepared import Rows, autocommit_sessionmaker, defer, run
from db.sessions import get_or_create_session
from db.statements import StatementConnections
from tests.db.test_sessions import a_builder

_NAME = (
    update(AgentSessionRow)
    .where(AgentSessionRow.id == bindparam("session_id"))
    .values(display_name=bindparam("name"))
)
_ADD_TO_NAME = (
    update(AgentSessionRow)
    .where(AgentSessionRow.id == bindparam("session_id"))
    .values(display_name=func.coalesce(AgentSessionRow.display_name, "") + bindparam("more"))
    .returning(AgentSessionRow.display_name)
)


class Refused(Exception):
    pass


async def a_session(sessions: async_sessionmaker[AsyncSession], name: str = "") -> uuid.UUID:
    """A conversation whose display name is `name` (none when empty)."""
    builder_id = await a_builder(sessions)
    async with sessions.begin() as db:
        return await get_or_create_session(
            builder_id, "whatsapp", "+1", display_name=name or None, db=db
        )


async def name_of(sessions: async_sessionmaker[AsyncSession], session_id: uuid.UUID) -> str:
    async with sessions() as db:
        name = await db.scalar(
            select(AgentSessionRow.display_name).where(AgentSessionRow.id == session_id)
        )
    assert name is not None
    return name


async def test_deferred_statements_run_in_order_before_what_follows(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    session_id = await a_session(sessions)
    seen: list[Rows] = []
    async with sessions.begin() as db:
        await defer(db, _NAME, session_id=session_id, name="a")
        await defer(db, _ADD_TO_NAME, check=seen.append, session_id=session_id, more="b")
        assert await run(db, _ADD_TO_NAME, session_id=session_id, more="c") == [("abc",)]
        assert seen == [[("ab",)]]
        await defer(db, _ADD_TO_NAME, session_id=session_id, more="d")
        orm_read = await db.scalar(  # an ORM query sends what was deferred first
            select(AgentSessionRow.display_name).where(AgentSessionRow.id == session_id)
        )
        assert orm_read == "abcd"
        await defer(db, _ADD_TO_NAME, session_id=session_id, more="e")  # sent by the commit
    assert await name_of(sessions, session_id) == "abcde"


async def test_a_rolled_back_transaction_takes_its_deferred_statements_with_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    session_id = await a_session(sessions)
    async with sessions() as db:
        with pytest.raises(Refused):
            async with db.begin():
                await defer(db, _NAME, session_id=session_id, name="rolled back")
                raise Refused
        async with db.begin():  # the same session's next transaction does not send it
            await run(db, _ADD_TO_NAME, session_id=session_id, more="kept")
    assert await name_of(sessions, session_id) == "kept"


@pytest.mark.parametrize("sent_by", ["the next statement", "the commit"])
async def test_a_check_that_refuses_the_rows_aborts_the_transaction(
    sessions: async_sessionmaker[AsyncSession], sent_by: str
) -> None:
    session_id = await a_session(sessions, "before")

    def refuse(rows: Rows) -> None:
        raise Refused(rows)

    with pytest.raises(Refused):
        async with sessions.begin() as db:
            await defer(db, _ADD_TO_NAME, check=refuse, session_id=session_id, more=" after")
            if sent_by == "the next statement":
                await run(db, _NAME, session_id=session_id, name="never")
    assert await name_of(sessions, session_id) == "before"


async def test_a_missing_parameter_is_refused_not_sent_as_null(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    session_id = await a_session(sessions, "named")
    with pytest.raises(Exception, match="name"):
        async with sessions.begin() as db:
            await run(db, _NAME, session_id=session_id)
    assert await name_of(sessions, session_id) == "named"


async def test_the_commit_waits_for_changes_the_orm_still_has_to_write(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    session_id = await a_session(sessions)
    async with sessions.begin() as db:
        row = await db.get(AgentSessionRow, session_id)
        assert row is not None
        await defer(db, _NAME, session_id=session_id, name="deferred")
        row.user_id = "written by the flush"
    async with sessions() as db:
        stored = await db.get(AgentSessionRow, session_id)
        assert stored is not None
        assert (stored.display_name, stored.user_id) == ("deferred", "written by the flush")


async def test_an_autocommit_session_sends_no_commit_of_its_own(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    session_id = await a_session(db_sessions)
    autocommit = create_sessionmaker(
        db_sessions.kw["bind"].execution_options(isolation_level="AUTOCOMMIT")
    )
    notices: list[str] = []
    async with autocommit.begin() as db:
        raw = await (await db.connection()).get_raw_connection()
        raw.driver_connection.add_notice_handler(
            lambda notice: notices.append(notice.message_primary)
        )
        await defer(db, _NAME, session_id=session_id, name="deferred")
    assert await name_of(db_sessions, session_id) == "deferred"
    assert notices == []  # not Postgres's "there is no transaction in progress"


async def test_an_autocommit_unit_of_work_runs_its_own_statements_on_the_persistent_connections(
    db_sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    session_id = await a_session(db_sessions)
    engine = db_sessions.kw["bind"]
    statements = StatementConnections(database_url, size=1)
    try:
        async with autocommit_sessionmaker(engine, statements).begin() as db:
            [(name,)] = await run(db, _ADD_TO_NAME, session_id=session_id, more="alone")
            lent = engine.pool.checkedout()
        assert name == "alone"
        assert lent == 0  # no pooled connection was checked out for it
        assert await name_of(db_sessions, session_id) == "alone"
    finally:
        await statements.aclose()


async def test_what_an_autocommit_unit_of_work_deferred_goes_before_its_next_statement(
    db_sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    session_id = await a_session(db_sessions)
    statements = StatementConnections(database_url, size=1)
    try:
        async with autocommit_sessionmaker(db_sessions.kw["bind"], statements).begin() as db:
            await defer(db, _NAME, session_id=session_id, name="first")
            [(name,)] = await run(db, _ADD_TO_NAME, session_id=session_id, more=", then")
        assert name == "first, then"
    finally:
        await statements.aclose()
