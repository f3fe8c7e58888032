"""Answering a conversation: find its session, take its lease, and run its turns in
order until nothing is pending; failures become a retry or a recorded terminal state.

Plain async functions (no Celery): the task calls `process_inbound`, tests can too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from db.core.log_context import bind, log_context
from db.core.logging_setup import mask_numbers
from db.inbox import (
    MessageForTask,
    attach_latecomers,
    fail_inbound,
    join_session,
    message_for_task,
    pending_arrivals,
)
from db.models import InboundStatus, Turn
from db.sessions import LeaseLostError, get_or_create_session
from db.turns import (
    RunStats,
    finish_turn,
    record_turn_error,
    resume_turn,
    start_turn,
)
from worker.conversation.lease import ConversationLease, lease_if_free
from worker.conversation.loaded_turn import NO_CHANNEL, LoadedTurn, load_turn
from worker.conversation.turn_runner import run_turn, send_fallback
from worker.errors import PermanentTurnError, TransientTurnError, UndeliverableError
from worker.process.runtime import Runtime

logger = logging.getLogger(__name__)

PLATFORM = "whatsapp"
DATABASE_RETRY_SECONDS = 5.0
BUSY_RETRY_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
RATE_WINDOW = timedelta(minutes=1)
_FINAL_STATUSES = (InboundStatus.PROCESSED, InboundStatus.FAILED, InboundStatus.UNROUTABLE)


class RetryLater(Exception):
    """Run the task again after `countdown` seconds: the conversation is busy, or a
    transient failure (model, provider, database) interrupted the turn."""

    def __init__(self, reason: str, *, countdown: float) -> None:
        super().__init__(reason)
        self.countdown = countdown


async def process_inbound(inbound_id: int, *, runtime: Runtime) -> None:
    """Make sure inbound message `inbound_id` gets answered (by us, or already was)."""
    with log_context(inbound_id=inbound_id):
        try:
            await _process_inbound(inbound_id, runtime=runtime)
        except (OperationalError, InterfaceError) as error:
            logger.warning(
                "inbound %s: database unavailable (%s)", inbound_id, type(error).__name__
            )
            raise RetryLater("database unavailable", countdown=DATABASE_RETRY_SECONDS) from error


async def _process_inbound(inbound_id: int, *, runtime: Runtime) -> None:
    """One statement reads the message; then one transaction finds its session, takes
    the lease and starts (or resumes) its turn, and the conversation is answered until
    nothing is pending. Most tasks of a busy conversation stop at the read: the worker
    holding it answers the messages that arrive during a turn, often before their own
    tasks run."""
    async with runtime.autocommit_sessionmaker() as db:
        inbound = await message_for_task(inbound_id, db=db)
    if inbound is None:
        logger.warning("inbound %s does not exist; dropping the task", inbound_id)
        return
    bind(provider=inbound.provider)
    if inbound.status in _FINAL_STATUSES:
        logger.debug("inbound %s is already %s", inbound_id, inbound.status)
        return
    async with runtime.sessionmaker.begin() as db:
        session_id = inbound.session_id or await _resolve_session(inbound, db=db)
        if session_id is None:
            return
        bind(session_id=session_id)
        lease = await lease_if_free(session_id, runtime=runtime, db=db)
        first: Step = Done()
        if lease is not None:
            first = await _next_step(lease, claiming=True, runtime=runtime, db=db)
    if lease is None and inbound.status == InboundStatus.PROCESSING:
        # Redelivered from a worker that took it into a turn and may have died: poll
        # until that worker finishes the turn or its lease runs out.
        raise RetryLater(f"session {session_id} is busy", countdown=BUSY_RETRY_SECONDS)
    if lease is None:
        # A latecomer: the worker holding the conversation takes it next (see
        # `_answer_turns`), so this task ends here instead of polling.
        logger.debug("inbound %s: session %s is busy; its holder takes it", inbound_id, session_id)
        return
    await answer_conversation(first, lease=lease, runtime=runtime)


async def _resolve_session(inbound: MessageForTask, *, db: AsyncSession) -> uuid.UUID | None:
    if inbound.builder_id is None:
        await fail_inbound(inbound.id, error="its channel was removed", db=db)
        logger.warning("inbound %s: channel removed; marked failed", inbound.id)
        return None
    session_id = await get_or_create_session(
        inbound.builder_id,
        PLATFORM,
        conversation_key(inbound),
        display_name=inbound.profile_name,
        wa_id=inbound.sender_wa_id,
        user_id=inbound.sender_user_id,
        db=db,
    )
    await join_session(inbound.id, session_id, db=db)  # its fellow latecomers follow it
    return session_id


class Sender(Protocol):
    """Who sent a message, as the inbox stores it."""

    @property
    def sender(self) -> str: ...
    @property
    def sender_wa_id(self) -> str | None: ...
    @property
    def sender_user_id(self) -> str | None: ...


def conversation_key(inbound: Sender) -> str:
    """Who the user is, across providers: the business-scoped user id when WhatsApp
    gives one (users with a username may have no number), else `+` and the number."""
    if inbound.sender_user_id:
        return inbound.sender_user_id
    if inbound.sender_wa_id:
        return f"+{inbound.sender_wa_id.lstrip('+')}"
    return inbound.sender.removeprefix("whatsapp:")


@dataclass(frozen=True)
class Wait:
    """Look again in `seconds`: the user may still be typing (a burst is answered as one
    turn), or the sender is over its rate of turns."""

    seconds: float


@dataclass(frozen=True)
class Done:
    """Nothing is pending: the conversation's lease was given back."""


Step = LoadedTurn | Wait | Done
"""What a conversation does next: answer this turn, wait, or nothing more."""


async def answer_conversation(first: Step, *, lease: ConversationLease, runtime: Runtime) -> None:
    """Under our lease, answer the conversation's turns in order until none is pending.
    Each turn is closed in the transaction that starts the next one, or that finds
    nothing left and gives the lease back."""
    with log_context(session_id=lease.session_id):
        try:
            async with lease:
                await _answer_turns(first, lease=lease, runtime=runtime)
        except LeaseLostError:
            logger.warning("session %s: lease lost; its new holder carries on", lease.session_id)


async def _answer_turns(first: Step, *, lease: ConversationLease, runtime: Runtime) -> None:
    """Each transaction renews our lease as its first statement, so its row lock comes
    before we look for pending messages. A task that finds the conversation busy leaves
    its message to us, and its message was stored before it looked: either it looked
    before this lock, and our reads after it see the message, or it waits for our commit
    and, if we gave the lease back, answers the message itself."""
    step = first
    while not isinstance(step, Done):
        finished: LoadedTurn | None = None
        failed_because = None
        if isinstance(step, Wait):
            await asyncio.sleep(step.seconds)
        else:
            finished = step
            with log_context(
                turn_id=step.turn.id, inbound_ids=[message.id for message in step.messages]
            ):
                failed_because = await _run_turn_guarded(step, lease=lease, runtime=runtime)
        async with runtime.sessionmaker.begin() as db:
            await lease.renew(db=db)
            if finished is not None:
                await finish_turn(
                    finished.turn.id,
                    failed_because=failed_because,
                    stats=_latest(finished.run_stats),
                    db=db,
                )
            step = await _next_step(lease, claiming=False, runtime=runtime, db=db)


async def _next_step(
    lease: ConversationLease, *, claiming: bool, runtime: Runtime, db: AsyncSession
) -> Step:
    """In the caller's transaction: when `claiming` (the task that took the lease), the
    unfinished turn if there is one; else, once the user has paused for
    `COALESCE_WINDOW_SECONDS` (a burst is answered as one turn) and is within the
    builder's `turns_per_minute`, else `SENDER_TURNS_PER_MINUTE` (past it, messages wait
    and coalesce), the turn an operator retried or a new turn for the pending messages;
    else how long to wait for either; else `Done`, with the lease given back. A claiming
    task over the rate retries later instead of holding the lease while it waits."""
    settings = runtime.settings
    session_id = lease.session_id
    turn = None
    if claiming and lease.unfinished_turn:
        turn = await resume_turn(session_id, db=db)
    new = False
    while True:
        if turn is None:
            await attach_latecomers(session_id, db=db)
            now = datetime.now(UTC)
            pending = await pending_arrivals(
                session_id,
                rate_since=now - RATE_WINDOW,
                default_rate=settings.sender_turns_per_minute,
                db=db,
            )
            if not pending.messages:
                await lease.give_back(db=db)
                return Done()
            newest = max(received_at for _id, received_at in pending.messages)
            settle = settings.coalesce_window_seconds - (now - newest).total_seconds()
            if settle > 0:
                return Wait(settle)
            wait = 0.0
            if pending.rate_filled_at is not None:
                wait = (pending.rate_filled_at + RATE_WINDOW - now).total_seconds()
            if wait > 0 and claiming:
                raise RetryLater(f"session {session_id} is over its rate", countdown=wait)
            if wait > 0:
                return Wait(wait)
            if pending.retried:  # an operator retried a turn: it answers its messages
                turn = await resume_turn(session_id, db=db)
            new = turn is None
            if turn is None:
                message_ids = [message_id for message_id, _ in pending.messages]
                turn = await start_turn(session_id, message_ids, db=db)
        loaded = await load_turn(turn, db=db, new=new)
        if loaded is not None:
            return loaded
        logger.warning("turn %s: %s; marked failed", turn.id, NO_CHANNEL)
        await finish_turn(turn.id, failed_because=NO_CHANNEL, db=db)
        turn = None


async def _run_turn_guarded(
    loaded: LoadedTurn, *, lease: ConversationLease, runtime: Runtime
) -> str | None:
    """Run one turn; returns why it failed for good (after the fallback reply), None when
    it replied. Anything else is recorded on it and retried later."""
    turn = loaded.turn
    try:
        await run_turn(loaded, lease=lease, runtime=runtime)
        return None
    except LeaseLostError:
        raise
    except PermanentTurnError as error:
        logger.warning("turn %s failed for good: %s", turn.id, mask_numbers(str(error)))
        if not isinstance(error, UndeliverableError):
            await _send_fallback_once(turn, lease=lease, runtime=runtime)
        return str(error)
    except Exception as error:
        countdown = _backoff(turn.attempts, runtime.settings.retry_backoff_seconds)
        if isinstance(error, TransientTurnError):
            countdown = max(countdown, error.retry_after or 0)
        else:
            logger.exception("turn %s: unexpected error (attempt %s)", turn.id, turn.attempts)
        logger.info("turn %s: retrying in %.1fs: %s", turn.id, countdown, mask_numbers(str(error)))
        async with runtime.sessionmaker.begin() as db:
            await record_turn_error(
                turn.id,
                f"{type(error).__name__}: {error}",
                stats=_latest(loaded.run_stats),
                db=db,
            )
        raise RetryLater(str(error), countdown=countdown) from error


async def _send_fallback_once(turn: Turn, *, lease: ConversationLease, runtime: Runtime) -> None:
    """The builder's fallback text, where sending is still possible; its own failure is
    logged, not retried, since the turn is over either way."""
    try:
        await send_fallback(turn, lease=lease, runtime=runtime)
    except LeaseLostError:
        raise
    except Exception as error:  # the turn ends failed whatever happens here; say why
        logger.warning("turn %s: fallback not sent: %s", turn.id, mask_numbers(str(error)))


def _latest(stats: list[RunStats]) -> RunStats | None:
    return stats[-1] if stats else None


def _backoff(attempt: int, base: float) -> float:
    """Exponential backoff, capped, with jitter so retries of many turns spread out."""
    return random.uniform(0.5, 1.0) * min(MAX_BACKOFF_SECONDS, base * 2.0 ** max(0, attempt - 1))
