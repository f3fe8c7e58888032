"""Correlation ids on log lines: bound where each becomes known, put on every record by
the handler's filter, so one message can be followed from webhook to reply.

They live in a context variable: each asyncio task runs in a copy of its creator's
context, so conversations sharing a worker's event loop never see each other's ids,
and `log_context` undoes its bindings when its block ends, so a long-lived task or
thread never carries one message's ids into the next.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import ContextVar, Token
from types import MappingProxyType, TracebackType

FIELDS = (
    "provider",
    "inbound_id",
    "task_id",
    "session_id",
    "turn_id",
    "inbound_ids",
    "outbound_id",
    "provider_message_id",
)
"""What a record can carry, in the order lines show them: the provider and inbox row
the receiver recorded, the Celery task answering it, the conversation, the turn and the
inbound messages it answers (a burst is one turn), and the reply part sent."""

_FIELD_NAMES = frozenset(FIELDS)
_bound: ContextVar[Mapping[str, object]] = ContextVar(
    "wabot_log_fields", default=MappingProxyType({})
)


class log_context:
    """Bind `fields` for the block, in this task or thread and in the tasks it starts."""

    __slots__ = ("_fields", "_token")

    def __init__(self, **fields: object) -> None:
        _check(fields)
        self._fields = fields
        self._token: Token[Mapping[str, object]] | None = None

    def __enter__(self) -> None:
        self._token = _bound.set({**_bound.get(), **self._fields})

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _error: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        assert self._token is not None, "log_context exited without being entered"
        _bound.reset(self._token)


def bind(**fields: object) -> None:
    """Add `fields` for the rest of the enclosing `log_context` block, whose end undoes
    them: for ids that become known midway through it."""
    _check(fields)
    _bound.set({**_bound.get(), **fields})


class CorrelationFilter(logging.Filter):
    """Put the bound fields on each record (installed on the handler, so it sees every
    logger's records, Celery's and uvicorn's too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _bound.get()
        if fields:
            record.__dict__.update(fields)
        return True


def _check(fields: Mapping[str, object]) -> None:
    """A misspelt field would silently never show; name it instead."""
    if not _FIELD_NAMES.issuperset(fields):
        unknown = ", ".join(sorted(fields.keys() - _FIELD_NAMES))
        raise TypeError(f"unknown log field(s): {unknown}")
