"""Rows of several tables from one statement, each as one JSON object: what a read that
must be a single round trip returns (`db.live_updates`), on Postgres and on SQLite.

`json_row` builds the object in SQL (`json_build_object` on Postgres, `json_object` on
SQLite, where JSON columns are nested with `json()`, not quoted); `from_json_row` turns
one back into its ORM class, typed as SQLAlchemy would have loaded it. The object comes
through the engine's JSON decoder (`db.lossless_json`) like any JSON column, so what a
JSON column held in its lossless form reads back as it was stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    ColumnElement,
    DateTime,
    Float,
    Uuid,
    func,
    inspect,
    literal_column,
    type_coerce,
)

from db.core.clock import as_utc
from db.models import Base, JSONDocument

Model = TypeVar("Model", bound=Base)


def json_row(columns: Iterable[ColumnElement[Any]], *, dialect: str) -> ColumnElement[Any]:
    """One JSON object of `columns`, keyed by their names."""
    pairs: list[Any] = []
    for column in columns:
        value: Any = column
        if dialect == "sqlite" and isinstance(column.type, JSON):
            value = func.json(column)
        pairs += [literal_column(f"'{column.key}'"), value]
    build = func.json_build_object if dialect == "postgresql" else func.json_object
    return type_coerce(build(*pairs), JSONDocument)


def from_json_row(model: type[Model], data: dict[str, Any]) -> Model:
    """A transient `model` (never added to a session) of the columns in `data`."""
    values = {}
    for attribute in inspect(model).column_attrs:
        column = attribute.columns[0]
        if column.key in data:
            values[attribute.key] = _typed(column.type, data[column.key])
    return model(**values)


def _typed(kind: Any, value: Any) -> Any:
    """A value as JSON wrote it, as its column's type loads it."""
    if value is None:
        return None
    if isinstance(kind, DateTime):
        return as_utc(datetime.fromisoformat(value))
    if isinstance(kind, Uuid):
        return uuid.UUID(value)
    if isinstance(kind, Boolean):
        return bool(value)
    if isinstance(kind, Float):  # JSON writes a whole float as an integer (1.0 as 1)
        return float(value)
    return value
