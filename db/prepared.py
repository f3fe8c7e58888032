"""Running the hot path's statements cheaply.

A worker runs a dozen statements per turn. Built anew and executed through the ORM,
each costs about 0.9 ms of CPU before it reaches the database: constructing the
statement, building its cache key, and matching an UPDATE's criteria against every
object the session holds. Built once at import with bind parameters and run on the
session's connection (`run`), the same statement costs about a third of that. The
session's objects are not updated by such a statement: code that reads a row after
changing it this way loads it again (`populate_existing`).

On Postgres such a statement also skips SQLAlchemy's execution: it is compiled once,
and psycopg runs its SQL on the transaction's own connection. Each statement is then
a round trip, and on a loaded machine a round trip's system calls and wake-ups cost
more CPU than the statement itself. So a statement whose result can wait is
`defer`red: it goes with the transaction's next statement in one round trip (psycopg's
pipeline mode), in the order they were issued, and its `check` sees its rows then.
Whatever else the transaction runs through the session (an ORM query, `db.execute`, a
flush, the commit) sends what is deferred first, so the order always holds; the
commit goes in the same round trip when no check waits on what it sends. On SQLite
each runs at once.

A unit of work in autocommit mode commits each statement on its own, so where one runs
does not matter. One from `autocommit_sessionmaker(engine, statements)` runs such a
statement on a persistent connection (`StatementConnections`) instead of checking one
out of the pool: that checkout, with its switch to autocommit and back, cost twice the
statement itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import ClauseElement, Executable, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import await_only

from db.database_errors import hide_data
from db.statements import StatementConnections

Rows = Sequence[Any]
Check = Callable[[Rows], None]
"""Called with a deferred statement's rows once they came back; raises to abort."""

_DEFERRED = "wabot_deferred_statements"
_STATEMENTS = "wabot_statement_connections"


@dataclass(frozen=True)
class _Compiled:
    sql: str
    fixed: dict[str, Any]
    """The values the statement carries itself (a status it compares with, the NULL a
    lease is released to)."""
    needed: frozenset[str]
    """The parameters every call gives."""

    def parameters(self, params: dict[str, Any]) -> dict[str, Any]:
        missing = self.needed - params.keys()
        if missing:
            raise InvalidRequestError(f"a value is required for {', '.join(sorted(missing))}")
        return self.fixed | params


@dataclass(frozen=True)
class _Deferred:
    statement: _Compiled
    params: dict[str, Any]
    check: Check | None


_compiled: dict[int, tuple[Executable, _Compiled | None]] = {}
"""By the statement's id, with the statement itself, so that id is never reused while
kept: the statements run here are built once, at import."""


def _for_psycopg(statement: Executable, dialect: Dialect) -> _Compiled | None:
    """`statement` compiled once for psycopg to run with its parameters as given; None
    when SQLAlchemy must prepare them (a type that converts values, a list expanded at
    run time, a column default) or the database is not Postgres."""
    if dialect.name != "postgresql":
        return None
    if id(statement) not in _compiled:
        _compiled[id(statement)] = (statement, _compile(statement, dialect))
    return _compiled[id(statement)][1]


def _compile(statement: Executable, dialect: Dialect) -> _Compiled | None:
    assert isinstance(statement, ClauseElement)
    compiled = statement.compile(dialect=dialect)
    if "POSTCOMPILE" in compiled.string:
        try:  # a list fixed in the statement (`db.inbox.status_in`) is written out
            compiled = statement.compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True}
            )
        except InvalidRequestError:  # a list given at run time
            return None
    assert isinstance(compiled, SQLCompiler)
    if compiled.insert_prefetch or compiled.update_prefetch:  # defaults made at run time
        return None
    converts = any(
        bind.type.dialect_impl(dialect).bind_processor(dialect) is not None
        for bind in compiled.binds.values()
    ) or any(
        column.type.dialect_impl(dialect).result_processor(dialect, None) is not None
        for column in getattr(statement, "exported_columns", ())
    )
    if converts:
        return None
    binds = compiled.bind_names.items()
    return _Compiled(
        compiled.string,
        fixed={name: bind.effective_value for bind, name in binds if not bind.required},
        needed=frozenset(name for bind, name in binds if bind.required),
    )


def autocommit_sessionmaker(
    engine: AsyncEngine, statements: StatementConnections | None
) -> async_sessionmaker[AsyncSession]:
    """Units of work in autocommit mode on `engine` (Postgres), whose prebuilt statements
    `run` on `statements` when given (see the module docstring)."""
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        info={_STATEMENTS: statements} if statements is not None else {},
    )


def single_statements(db: AsyncSession) -> StatementConnections | None:
    """The persistent connections where `db`, a unit of work in autocommit mode from
    `autocommit_sessionmaker`, runs a statement of its own now; None for any other unit
    of work, or while statements it deferred wait to be sent (they go first, on its own
    connection)."""
    statements: StatementConnections | None = db.info.get(_STATEMENTS)
    if statements is None or db.info.get(_DEFERRED) or db.new or db.dirty or db.deleted:
        return None
    return statements


async def run(db: AsyncSession, statement: Executable, **params: Any) -> Rows:
    """Execute a prebuilt Core `statement` with `params` in `db`'s transaction, after
    writing the session's pending changes (as an ORM execute would), so the statement
    sees them, and after what was deferred; returns its rows (none when it returns
    none). In an autocommit unit of work it may run on a persistent connection (see the
    module docstring)."""
    statements = single_statements(db)
    if statements is not None:
        compiled = _for_psycopg(statement, db.get_bind().dialect)
        if compiled is not None:
            rows: Rows = await statements.fetch(compiled.sql, compiled.parameters(params))
            return rows
    await _write_pending_changes(db)
    connection = await db.connection()
    compiled = _for_psycopg(statement, connection.dialect)
    if compiled is None:
        await _send_deferred(db, connection)
        result = await connection.execute(statement, params)
        return result.all() if result.returns_rows else []
    batch = [*db.info.pop(_DEFERRED, []), _Deferred(compiled, params, None)]
    return (await _pipelined(connection, batch))[-1]


async def defer(
    db: AsyncSession, statement: Executable, *, check: Check | None = None, **params: Any
) -> None:
    """Run `statement` with `params` in `db`'s transaction with whatever it runs next
    (at once on SQLite, or when SQLAlchemy must prepare its parameters), then `check`
    its rows."""
    await _write_pending_changes(db)
    connection = await db.connection()
    compiled = _for_psycopg(statement, connection.dialect)
    if compiled is not None:
        db.info.setdefault(_DEFERRED, []).append(_Deferred(compiled, params, check))
        return
    rows = await run(db, statement, **params)
    if check is not None:
        check(rows)


async def _write_pending_changes(db: AsyncSession) -> None:
    if db.new or db.dirty or db.deleted:
        await db.flush()


async def _send_deferred(db: AsyncSession, connection: AsyncConnection) -> None:
    deferred = db.info.pop(_DEFERRED, [])
    if deferred:
        await _pipelined(connection, deferred)


async def _pipelined(connection: AsyncConnection, batch: list[_Deferred]) -> list[Rows]:
    raw = await connection.get_raw_connection()
    try:
        return await _checked(raw.driver_connection, batch)
    except DBAPIError as error:
        if error.connection_invalidated:
            await connection.invalidate(error.orig)
        raise


async def _checked(driver: Any, batch: list[_Deferred]) -> list[Rows]:
    """Run `batch` in order in one round trip on psycopg connection `driver`, errors as
    SQLAlchemy's; each one's check sees its rows."""
    try:
        rows = await _pipeline(driver, batch)
    except psycopg.Error as error:
        hide_data(error)  # Postgres quotes the values it refused; nobody may log them
        raise DBAPIError.instance(
            batch[-1].statement.sql,
            None,
            error,
            psycopg.Error,
            hide_parameters=True,
            connection_invalidated=bool(driver.closed),
        ) from error
    for deferred, returned in zip(batch, rows, strict=True):
        if deferred.check is not None:
            deferred.check(returned)
    return rows


async def _pipeline(driver: psycopg.AsyncConnection[Any], batch: list[_Deferred]) -> list[Rows]:
    if len(batch) == 1:
        [only] = batch
        cursor = await driver.execute(only.statement.sql, only.statement.parameters(only.params))
        return [await cursor.fetchall() if cursor.description else []]
    async with driver.pipeline():  # its end sends the batch and reads every result
        cursors = [
            await driver.execute(each.statement.sql, each.statement.parameters(each.params))
            for each in batch
        ]
    return [await cursor.fetchall() if cursor.description else [] for cursor in cursors]


_COMMIT = _Deferred(_Compiled("COMMIT", fixed={}, needed=frozenset()), {}, None)


def _send_deferred_now(session: Session, *, committing: bool = False) -> None:
    """In the session's own (greenlet) context: send what was deferred before the ORM
    runs anything of its own. When `committing`, the COMMIT goes in the same round trip
    if nothing is left to flush or check; psycopg's own commit then finds the
    transaction ended and sends nothing."""
    deferred = session.info.pop(_DEFERRED, None)
    if deferred:
        connection = session.connection()
        driver = connection.connection.driver_connection
        assert driver is not None  # the session's transaction holds its connection
        if committing and not driver.autocommit and _commits_with(session, deferred):
            deferred = [*deferred, _COMMIT]
        try:
            await_only(_checked(driver, deferred))
        except DBAPIError as error:
            if error.connection_invalidated:
                connection.invalidate(error.orig)
            raise


@event.listens_for(Session, "do_orm_execute")
def _before_orm_execute(state: ORMExecuteState) -> None:
    _send_deferred_now(state.session)


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    _send_deferred_now(session)


def _commits_with(session: Session, deferred: list[_Deferred]) -> bool:
    """Whether the session's outermost transaction (not an autocommit connection's
    statements) may commit with `deferred`: no savepoint is being released, no change
    waits for the flush that follows this hook, and no statement's check must see its
    rows before the commit."""
    pending = session.new or session.dirty or session.deleted
    checked = any(each.check is not None for each in deferred)
    return not (session.in_nested_transaction() or pending or checked)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    _send_deferred_now(session, committing=True)


@event.listens_for(Session, "after_transaction_end")
def _forget_deferred(session: Session, transaction: SessionTransaction) -> None:
    """A transaction that ended (rolled back, say) takes its unsent statements with it."""
    if transaction.parent is None:
        session.info.pop(_DEFERRED, None)
