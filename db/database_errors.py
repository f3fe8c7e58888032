"""What a database error may say: never the data that caused it.

Postgres quotes the offending values in its errors (`DETAIL: Key (…)=(…)`, `CONTEXT: JSON
data, line 1: …`, `invalid input syntax for type uuid: "…"`), so psycopg's text of an
error carries message text, names and numbers into tracebacks, Celery's retry lines and
stored turn errors. `hide_data` cuts an error down, where it is raised, to what names
the problem: the primary message with quoted values elided, the SQLSTATE, and the
table, column or constraint it concerns.
"""

from __future__ import annotations

import re
import sqlite3

import psycopg
from sqlalchemy import Index
from sqlalchemy.exc import StatementError
from sqlalchemy.schema import ColumnCollectionConstraint

from db.models import Base

# Classes of SQLSTATE where the database refused the values, not the connection or the
# statement: data exception, integrity constraint violation, program limit exceeded.
_REFUSED_DATA_CLASSES = ("22", "23", "54")
_QUOTED = re.compile(r'"([^"]*)"')
_ELIDED = '"…"'


def _schema_names() -> dict[str, list[str]]:
    """Every table, column, constraint and index name of our schema; a constraint or index
    maps to its columns."""
    names: dict[str, list[str]] = {}
    for table in Base.metadata.sorted_tables:
        names[table.name] = []
        for column in table.columns:
            names.setdefault(column.name, [column.name])
        keyed: list[ColumnCollectionConstraint | Index] = [
            *(each for each in table.constraints if isinstance(each, ColumnCollectionConstraint)),
            *table.indexes,
        ]
        for constraint in keyed:
            if constraint.name:
                names[str(constraint.name)] = [column.name for column in constraint.columns]
    return names


_SCHEMA_NAMES = _schema_names()


def hide_data(error: BaseException) -> None:
    """Rewrite, in place, the text of every psycopg error in `error`'s chain (and of the
    SQLAlchemy errors wrapping them) to name the problem without quoting data. Safe to
    call again on an error already rewritten."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
        if isinstance(current, StatementError) and isinstance(current.orig, psycopg.Error):
            _rewrite(current.orig)
            orig = current.orig
            current.args = (f"({type(orig).__module__}.{type(orig).__name__}) {orig}",)
            pending.append(orig)
        elif isinstance(current, psycopg.Error):
            _rewrite(current)


def refuses_data(error: BaseException) -> bool:
    """Whether the database (or the driver, or JSON) refused the values a statement was
    given, rather than failing to run it: the same values would fail again, others not."""
    orig = error.orig if isinstance(error, StatementError) else error
    if isinstance(orig, psycopg.Error):
        if orig.sqlstate is None:  # refused by psycopg before sending (a NUL in a text)
            return isinstance(orig, psycopg.DataError)
        return orig.sqlstate.startswith(_REFUSED_DATA_CLASSES)
    return isinstance(orig, sqlite3.DataError | sqlite3.IntegrityError | ValueError | TypeError)


def refused_columns(error: BaseException) -> list[str]:
    """The columns a refusal names, directly or through its constraint or index; [] when it
    names none (a value JSON or the driver could not carry)."""
    orig = error.orig if isinstance(error, StatementError) else error
    if not isinstance(orig, psycopg.Error):
        return []
    if orig.diag.column_name:
        return [orig.diag.column_name]
    return _SCHEMA_NAMES.get(orig.diag.constraint_name or "", [])


def _rewrite(error: psycopg.Error) -> None:
    diag = error.diag
    if diag.message_primary is None:  # raised by psycopg itself: its texts quote no data
        return
    named = {
        name
        for name in (
            diag.schema_name,
            diag.table_name,
            diag.column_name,
            diag.datatype_name,
            diag.constraint_name,
        )
        if name
    }

    def identifier_or_elided(quoted: re.Match[str]) -> str:
        name = quoted.group(1)
        return quoted.group() if name in named or name in _SCHEMA_NAMES else _ELIDED

    error.args = (f"{_QUOTED.sub(identifier_or_elided, diag.message_primary)} ({error.sqlstate})",)
