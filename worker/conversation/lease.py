"""A conversation's lease: one holder at a time (the worker answering its turns, a web
chat turn, an operator replying or clearing its memory), so nothing lands in the middle
of a turn. Every write to the conversation's history is fenced by the lease's token.

Take it inside the transaction that needs it (`take_lease`, or `lease_if_free` where a
busy conversation is no error), then hold it for a block: `async with lease:` gives it
back when the block ends. `conversation_lease` does both for a caller with nothing else
to read. While the block runs, the lease is renewed in the background each time it
stops being fresh: what the holder does outside the database (a reply the provider is
slow to take, a send retried after a 429) cannot be fenced by the token, so the lease
must not run out under it, or another worker takes the conversation over and sends the
same reply again. A holder silent for many lifetimes (`SILENT_HOLDER_LIFETIMES`) is
presumed stuck, and its lease is left to run out.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from db.sessions import LeaseLostError, acquire_lease, release_lease, renew_lease
from worker.process.runtime import Runtime

logger = logging.getLogger(__name__)

BUSY = "the bot is answering this conversation right now"
RENEWAL_RETRY_SECONDS = 1.0
"""How soon a renewal that could not reach the database is tried again."""
SILENT_HOLDER_LIFETIMES = 10
SILENT_HOLDER_MIN_SECONDS = 600.0
"""A holder that has neither kept nor renewed its lease for this many lease lifetimes,
and at least this long, is presumed stuck (an await that never ends): the lease is no
longer renewed for it and runs out, so another worker can answer the conversation. No
step of a turn (a run, a send with its retries, a burst's files fetched, a wait for the
sender's rate) comes near it."""


class ConversationBusy(Exception):
    """Another holder has the conversation's lease (a turn in flight, or an operator)."""


@dataclass
class ConversationLease:
    """Conversation `session_id`, ours while its lease carries `token`.

    As an async context manager it is held from the block's start and given back at its
    end, unless `give_back` already did in a transaction that committed (the block then
    ends normally)."""

    session_id: uuid.UUID
    token: uuid.UUID
    runtime: Runtime = field(repr=False)
    unfinished_turn: bool = False
    """One of the conversation's turns was left unfinished when the lease was taken."""
    taken_at: float = field(default_factory=time.monotonic, repr=False)
    """When the database gave us the lease (`time.monotonic()`): its time-to-live runs
    from there, not from when the block starts."""
    _given_back: bool = field(default=False, init=False)
    _acted_at: float = field(default_factory=time.monotonic, init=False, repr=False)
    """When the holder last kept or renewed the lease itself: its sign of life."""
    _next_renewal: asyncio.TimerHandle | None = field(default=None, init=False, repr=False)
    _renewing: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def renew(self, *, db: AsyncSession) -> None:
        """Extend the lease in the caller's transaction (as its first statement, its row
        lock orders the transaction after anyone who looked at the conversation); the
        transaction's next statement, or its commit, raises `LeaseLostError` when it
        expired and another holder took the conversation."""
        self._acted_at = time.monotonic()
        await self._extend(db=db)

    async def keep(self, *, db: AsyncSession) -> None:
        """Make sure the conversation is still ours before acting on it: nothing to do
        while the lease is fresh, else `renew` it."""
        self._acted_at = time.monotonic()
        if not self.runtime.leases.fresh(self.token):
            await self._extend(db=db)

    async def keep_alone(self) -> None:
        """`keep` for a step with nothing else to write: a transaction is opened only
        when the lease must be renewed, not to learn that it is fresh."""
        self._acted_at = time.monotonic()
        if not self.runtime.leases.fresh(self.token):
            async with self.runtime.sessionmaker.begin() as db:
                await self._extend(db=db)

    async def _extend(self, *, db: AsyncSession) -> None:
        await renew_lease(
            self.session_id,
            self.token,
            ttl_seconds=self.runtime.settings.conversation_lease_seconds,
            db=db,
        )
        self.runtime.leases.held(self.token)

    async def give_back(self, *, db: AsyncSession) -> None:
        """Release the lease in the caller's transaction (the worker's: the one that
        finds nothing pending, so a message stored meanwhile finds it free)."""
        await release_lease(self.session_id, self.token, db=db)
        self._given_back = True

    async def __aenter__(self) -> ConversationLease:
        self.runtime.leases.held(self.token, since=self.taken_at)
        self._renew_when_stale()
        return self

    def _renew_when_stale(self, *, after: float | None = None) -> None:
        """Renew the lease once it stops being fresh (or `after` seconds); the block's
        end cancels it."""
        delay = self.runtime.leases.seconds_fresh(self.token) if after is None else after
        self._next_renewal = asyncio.get_running_loop().call_later(delay, self._start_renewal)

    def _start_renewal(self) -> None:
        self._renewing = asyncio.create_task(self._renew_in_background())

    async def _renew_in_background(self) -> None:
        """Renew the lease in a transaction of its own. If it was lost, or the database
        cannot be reached, it is no longer fresh: the holder's next `keep` renews it
        itself, and stops on `LeaseLostError`."""
        lifetime = self.runtime.settings.conversation_lease_seconds
        silent = time.monotonic() - self._acted_at
        if silent > max(SILENT_HOLDER_LIFETIMES * lifetime, SILENT_HOLDER_MIN_SECONDS):
            logger.warning(
                "session %s: its holder has not acted for %.0fs; its lease is left to run out",
                self.session_id,
                silent,
            )
            return
        try:
            async with self.runtime.sessionmaker.begin() as db:
                await self._extend(db=db)
        except LeaseLostError:
            self.runtime.leases.forget(self.token)
            if not self._given_back:
                logger.warning("session %s: its lease ran out and was taken over", self.session_id)
            return
        except SQLAlchemyError as error:
            self.runtime.leases.forget(self.token)
            logger.warning(
                "session %s: could not renew its lease (%s); trying again in %gs",
                self.session_id,
                type(error).__name__,
                RENEWAL_RETRY_SECONDS,
            )
            self._renew_when_stale(after=RENEWAL_RETRY_SECONDS)
            return
        self._renew_when_stale()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._renewing is not None:
            await self._renewing  # it schedules the next one as it ends: cancelled here
        if self._next_renewal is not None:
            self._next_renewal.cancel()
        self.runtime.leases.forget(self.token)
        if error is None and self._given_back:
            return
        async with self.runtime.sessionmaker.begin() as db:
            await release_lease(self.session_id, self.token, db=db)


async def lease_if_free(
    session_id: uuid.UUID, *, runtime: Runtime, db: AsyncSession
) -> ConversationLease | None:
    """Take the conversation in the caller's transaction if nobody holds a live lease on
    it; None when somebody does."""
    asked_at = time.monotonic()
    taken = await acquire_lease(
        session_id, ttl_seconds=runtime.settings.conversation_lease_seconds, db=db
    )
    if taken is None:
        return None
    return ConversationLease(
        session_id, taken.token, runtime, unfinished_turn=taken.unfinished_turn, taken_at=asked_at
    )


async def take_lease(
    session_id: uuid.UUID, *, runtime: Runtime, db: AsyncSession, busy: str = BUSY
) -> ConversationLease:
    """`lease_if_free`, or `ConversationBusy(busy)`."""
    lease = await lease_if_free(session_id, runtime=runtime, db=db)
    if lease is None:
        raise ConversationBusy(busy)
    return lease


@asynccontextmanager
async def conversation_lease(
    session_id: uuid.UUID, *, runtime: Runtime
) -> AsyncIterator[ConversationLease]:
    """The conversation, taken in a transaction of its own and held for the block;
    `ConversationBusy` while somebody else holds it."""
    async with runtime.sessionmaker.begin() as db:
        lease = await take_lease(session_id, runtime=runtime, db=db)
    async with lease:
        yield lease
