"""Group commit for the receiver: every webhook's messages are in the inbox and their
tasks are on the broker before it answers, at one transaction and one broker round trip
per batch rather than per request.

Requests hand their messages over and wait; one flusher records everything that arrived
while the previous batch was being written. An idle receiver writes a batch of one at
once (no timer, no added latency); a busy one writes larger batches, which is where the
throughput comes from.

One request's values can never cost another its messages: when the database refuses a
value in a batch (not an outage), the writer records the batch's halves apart, down to
single requests; only a request refused on its own is answered with that refusal (422,
naming the column), everyone else is recorded, still in arrival order. An outage fails
the whole batch (503: providers retry).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from celery import Celery
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException

from db.database_errors import refused_columns, refuses_data
from db.inbox import ReceivedMessage, Recorded, record_inbound, record_inbound_at_once
from db.statements import StatementConnections
from worker.celery_app import enqueue_inbound

logger = logging.getLogger(__name__)

MAX_BATCH_MESSAGES = 1000


@dataclass
class _Waiting:
    messages: Sequence[ReceivedMessage]
    outcome: asyncio.Future[list[Recorded]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    recorded: list[Recorded] = field(default_factory=list)


class InboxWriter:
    """Records and enqueues for all requests of one receiver process (on its loop)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        celery: Celery,
        *,
        statements: StatementConnections | None,
    ) -> None:
        """`statements`: a persistent Postgres connection for the batches (None on SQLite,
        where each batch is a transaction from `sessionmaker`)."""
        self._sessionmaker = sessionmaker
        self._statements = statements
        self._celery = celery
        self._waiting: list[_Waiting] = []
        self._arrived = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._publishing: set[asyncio.Task[None]] = set()

    async def record(self, messages: Sequence[ReceivedMessage]) -> list[Recorded]:
        """Durably record `messages` and enqueue the routable new ones; one outcome per
        message. Raises `HTTPException` 422 when the database refuses a value of theirs,
        else what the database raised (the caller answers 503)."""
        if not messages:
            return []
        if self._flusher is None:  # in a context of its own, not this request's
            self._flusher = asyncio.create_task(
                self._flush_forever(), name="inbox-writer", context=contextvars.Context()
            )
        waiting = _Waiting(messages)
        self._waiting.append(waiting)
        self._arrived.set()
        return await waiting.outcome

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
        await asyncio.gather(*self._publishing, return_exceptions=True)
        for waiting in self._waiting:
            waiting.outcome.cancel()
        if self._statements is not None:
            await self._statements.aclose()

    async def _record(self, messages: list[ReceivedMessage]) -> list[Recorded]:
        if self._statements is not None:
            return await record_inbound_at_once(messages, statements=self._statements)
        async with self._sessionmaker.begin() as db:
            return await record_inbound(messages, db=db)

    async def _flush_forever(self) -> None:
        """Record batches one after another (so ids follow arrival order); each batch's
        publishing overlaps the recording of the next."""
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._waiting:
                batch = self._take_batch()
                try:
                    recorded = await self._record_apart_if_refused(batch)
                except Exception as error:  # each waiting request answers for itself (503)
                    _fail(batch, error)
                    continue
                publishing = asyncio.create_task(self._enqueue_and_answer(recorded))
                self._publishing.add(publishing)
                publishing.add_done_callback(self._publishing.discard)

    async def _record_apart_if_refused(self, batch: list[_Waiting]) -> list[_Waiting]:
        """Record `batch` in one statement; if the database refuses a value in it, record
        its halves apart, down to the single requests it refuses, which get the refusal.
        Returns the requests recorded (their outcomes in `recorded`), in arrival order."""
        try:
            outcomes = await self._record(_messages_of(batch))
        except Exception as error:
            if not refuses_data(error):
                raise
            if len(batch) > 1:
                middle = len(batch) // 2
                first = await self._record_apart_if_refused(batch[:middle])
                return first + await self._record_apart_if_refused(batch[middle:])
            _refuse(batch[0], error)
            return []
        start = 0
        for waiting in batch:
            end = start + len(waiting.messages)
            waiting.recorded, start = outcomes[start:end], end
        return batch

    def _take_batch(self) -> list[_Waiting]:
        """The oldest waiting requests, up to MAX_BATCH_MESSAGES (at least one)."""
        count, total = 0, 0
        for waiting in self._waiting:
            if count and total + len(waiting.messages) > MAX_BATCH_MESSAGES:
                break
            count, total = count + 1, total + len(waiting.messages)
        batch, self._waiting = self._waiting[:count], self._waiting[count:]
        return batch

    async def _enqueue_and_answer(self, batch: list[_Waiting]) -> None:
        try:
            await enqueue_inbound(
                self._celery,
                [
                    outcome.enqueue_id
                    for waiting in batch
                    for outcome in waiting.recorded
                    if outcome.enqueue_id is not None
                ],
            )
        except Exception as error:
            _fail(batch, error)
            return
        for waiting in batch:
            if not waiting.outcome.done():  # a request whose client went away is cancelled
                waiting.outcome.set_result(waiting.recorded)


def _messages_of(batch: list[_Waiting]) -> list[ReceivedMessage]:
    return [message for waiting in batch for message in waiting.messages]


def _refuse(waiting: _Waiting, error: Exception) -> None:
    """Answer a request whose values the database refused on their own: 422, naming the
    column where the database does (its error text quotes no data: see
    `db.database_errors`)."""
    columns = refused_columns(error)
    where = f" (column {', '.join(columns)})" if columns else ""
    reason = error.orig if isinstance(error, StatementError) else error
    logger.warning(
        "inbox: the database refused a request's %d message(s)%s: %s; only it was refused",
        len(waiting.messages),
        where,
        reason,
    )
    if not waiting.outcome.done():
        waiting.outcome.set_exception(
            HTTPException(
                422,
                f"the inbox cannot store a value of this request{where}: {reason}; "
                "nothing of it was recorded",
            )
        )


def _fail(batch: list[_Waiting], error: Exception) -> None:
    for waiting in batch:
        if not waiting.outcome.done():
            waiting.outcome.set_exception(error)
