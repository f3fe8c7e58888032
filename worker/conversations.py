"""Answering a conversation: find its session, take its lease, and run its turns in
order until nothing is pending; failures become a retry or a recorded terminal state.

Plain async functions (no Celery): the task calls `process_inbound`, tests can too.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from db.conversations import (
    LeaseLostError,
    acquire_lease,
    get_or_create_session,
    release_lease,
)
from db.inbox import (
    attach_latecomers,
    fail_inbound,
    get_inbound,
    newest_pending_at,
)
from db.logs import mask_numbers
from db.models import Channel, InboundMessage, InboundStatus, Turn
from db.turns import finish_turn, record_turn_error, resume_turn, start_turn, turns_started_since
from worker.replies import hold_lease
from worker.runtime import Runtime
from worker.turn_errors import PermanentTurnError, TransientTurnError, UndeliverableError
from worker.turns import run_turn, send_fallback

logger = logging.getLogger(__name__)

PLATFORM = "whatsapp"
BUSY_RETRY_SECONDS = 1.0
DATABASE_RETRY_SECONDS = 5.0
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
    try:
        await _process_inbound(inbound_id, runtime=runtime)
    except (OperationalError, InterfaceError) as error:
        logger.warning("inbound %s: database unavailable (%s)", inbound_id, type(error).__name__)
        raise RetryLater("database unavailable", countdown=DATABASE_RETRY_SECONDS) from error


async def _process_inbound(inbound_id: int, *, runtime: Runtime) -> None:
    async with runtime.sessionmaker.begin() as db:
        inbound = await get_inbound(inbound_id, db=db)
        if inbound is None:
            logger.warning("inbound %s does not exist; dropping the task", inbound_id)
            return
        if inbound.status in _FINAL_STATUSES:
            logger.info("inbound %s is already %s", inbound_id, inbound.status)
            return
        session_id = inbound.session_id or await _resolve_session(inbound, db=db)
        if session_id is None:
            return
        lease = await acquire_lease(
            session_id, ttl_seconds=runtime.settings.conversation_lease_seconds, db=db
        )
    if lease is None:
        raise RetryLater(f"session {session_id} is busy", countdown=BUSY_RETRY_SECONDS)
    await answer_conversation(session_id, lease=lease, runtime=runtime)


async def _resolve_session(inbound: InboundMessage, *, db: AsyncSession) -> uuid.UUID | None:
    channel = await db.get(Channel, inbound.channel_id) if inbound.channel_id else None
    if channel is None:
        await fail_inbound(inbound.id, error="its channel was removed", db=db)
        logger.warning("inbound %s: channel removed; marked failed", inbound.id)
        return None
    session_id = await get_or_create_session(
        channel.builder_id,
        PLATFORM,
        conversation_key(inbound),
        display_name=inbound.profile_name,
        wa_id=inbound.sender_wa_id,
        user_id=inbound.sender_user_id,
        db=db,
    )
    inbound.session_id = session_id  # its fellow latecomers join before the next turn
    return session_id


def conversation_key(inbound: InboundMessage) -> str:
    """Who the user is, across providers: the business-scoped user id when WhatsApp
    gives one (users with a username may have no number), else `+` and the number."""
    if inbound.sender_user_id:
        return inbound.sender_user_id
    if inbound.sender_wa_id:
        return f"+{inbound.sender_wa_id.lstrip('+')}"
    return inbound.sender.removeprefix("whatsapp:")


async def answer_conversation(session_id: uuid.UUID, *, lease: uuid.UUID, runtime: Runtime) -> None:
    """Under our lease, answer the conversation's turns in order until none is pending;
    the lease is released in the same transaction that finds nothing left."""
    runtime.leases.held(lease)
    released = False
    try:
        while (turn := await _next_turn(session_id, lease=lease, runtime=runtime)) is not None:
            await _run_turn_guarded(turn, lease=lease, runtime=runtime)
        released = True
    except LeaseLostError:
        logger.warning("session %s: lease lost; its new holder carries on", session_id)
    finally:
        runtime.leases.forget(lease)
        if not released:
            async with runtime.sessionmaker.begin() as db:
                await release_lease(session_id, lease, db=db)


async def _next_turn(session_id: uuid.UUID, *, lease: uuid.UUID, runtime: Runtime) -> Turn | None:
    """The unfinished turn if there is one; else a new turn for the pending messages once
    the user has paused for `COALESCE_WINDOW_SECONDS` (a burst is answered as one turn)
    and is within `SENDER_TURNS_PER_MINUTE` (past it, messages wait and coalesce). None,
    with the lease released, when nothing is pending."""
    settings = runtime.settings
    while True:
        async with runtime.sessionmaker.begin() as db:
            await hold_lease(session_id, lease, runtime=runtime, db=db)
            turn = await resume_turn(session_id, db=db)
            if turn is not None:
                return turn
            await attach_latecomers(session_id, db=db)
            newest = await newest_pending_at(session_id, db=db)
            if newest is None:
                await release_lease(session_id, lease, db=db)
                return None
            now = datetime.now(UTC)
            settle = settings.coalesce_window_seconds - (now - newest).total_seconds()
            if settle <= 0:
                wait = await _rate_limit_wait(session_id, now, settings.sender_turns_per_minute, db)
                if wait > 0:
                    raise RetryLater(f"session {session_id} is over its rate", countdown=wait)
                turn = await start_turn(session_id, db=db)
                if turn is None:  # paused by an operator: the messages wait for a resume
                    await release_lease(session_id, lease, db=db)
                return turn
        await asyncio.sleep(settle)


async def _rate_limit_wait(
    session_id: uuid.UUID, now: datetime, per_minute: int, db: AsyncSession
) -> float:
    """Seconds until this sender may start another turn (0 when it may now)."""
    if per_minute <= 0:
        return 0.0
    started = await turns_started_since(session_id, now - RATE_WINDOW, db=db)
    if len(started) < per_minute:
        return 0.0
    return (started[-per_minute] + RATE_WINDOW - now).total_seconds()


async def _run_turn_guarded(turn: Turn, *, lease: uuid.UUID, runtime: Runtime) -> None:
    """Run one turn; turn its failures into a retry or a recorded terminal state."""
    try:
        await run_turn(turn, lease=lease, runtime=runtime)
    except LeaseLostError:
        raise
    except PermanentTurnError as error:
        logger.warning("turn %s failed for good: %s", turn.id, mask_numbers(str(error)))
        if not isinstance(error, UndeliverableError):
            await _send_fallback_once(turn, lease=lease, runtime=runtime)
        async with runtime.sessionmaker.begin() as db:
            await finish_turn(turn.id, failed_because=str(error), db=db)
    except Exception as error:
        countdown = _backoff(turn.attempts, runtime.settings.retry_backoff_seconds)
        if isinstance(error, TransientTurnError):
            countdown = max(countdown, error.retry_after or 0)
        else:
            logger.exception("turn %s: unexpected error (attempt %s)", turn.id, turn.attempts)
        logger.info("turn %s: retrying in %.1fs: %s", turn.id, countdown, mask_numbers(str(error)))
        async with runtime.sessionmaker.begin() as db:
            await record_turn_error(turn.id, f"{type(error).__name__}: {error}", db=db)
        raise RetryLater(str(error), countdown=countdown) from error


async def _send_fallback_once(turn: Turn, *, lease: uuid.UUID, runtime: Runtime) -> None:
    """The builder's fallback text, where sending is still possible; its own failure is
    logged, not retried, since the turn is over either way."""
    try:
        await send_fallback(turn, lease=lease, runtime=runtime)
    except LeaseLostError:
        raise
    except Exception as error:  # the turn ends failed whatever happens here; say why
        logger.warning("turn %s: fallback not sent: %s", turn.id, mask_numbers(str(error)))


def _backoff(attempt: int, base: float) -> float:
    """Exponential backoff, capped, with jitter so retries of many turns spread out."""
    return random.uniform(0.5, 1.0) * min(MAX_BACKOFF_SECONDS, base * 2 ** max(0, attempt - 1))
