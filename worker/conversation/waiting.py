"""Messages that arrived while an operator had paused the bot: kept in the history
without an answer (a human answered them, or the operator chose "only what comes
next"), or handed to the worker on resume.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from db.inbox import attach_latecomers, pending_arrivals
from db.takeover import set_paused, waiting_message_ids
from db.turns import finish_turn, start_turn
from worker.conversation.lease import ConversationLease, conversation_lease
from worker.conversation.loaded_turn import NO_CHANNEL, load_turn
from worker.conversation.turn_runner import record_input
from worker.process.runtime import Runtime

logger = logging.getLogger(__name__)


async def record_waiting(
    session_id: uuid.UUID, *, lease: ConversationLease, runtime: Runtime
) -> int:
    """Under our lease, store the messages no turn has taken in the history as one turn
    that runs no agent and sends nothing; returns how many. They go in before whatever
    the caller stores next (a human's reply), so the history reads in arrival order."""
    async with runtime.sessionmaker.begin() as db:
        await lease.renew(db=db)
        await attach_latecomers(session_id, db=db)
        message_ids = await waiting_message_ids(session_id, db=db)
        if not message_ids:
            return 0
        turn = await start_turn(session_id, message_ids, db=db)
        loaded = await load_turn(turn, db=db, new=True)
        if loaded is None:
            await finish_turn(turn.id, failed_because=NO_CHANNEL, db=db)
            return 0
    try:
        await record_input(loaded, lease=lease, runtime=runtime)
    except Exception as error:
        async with runtime.sessionmaker.begin() as db:
            await finish_turn(turn.id, failed_because=f"not recorded: {error}", db=db)
        raise
    async with runtime.sessionmaker.begin() as db:
        await finish_turn(turn.id, db=db)
    logger.info("turn %s: %d waiting message(s) recorded unanswered", turn.id, len(message_ids))
    return len(message_ids)


@dataclass(frozen=True)
class Resumed:
    """What a resume did: messages recorded unanswered, and those the bot now answers
    (enqueue the last: the worker takes the conversation's pending messages together)."""

    recorded: int
    to_answer: list[int]


async def resume_bot(session_id: uuid.UUID, *, answer_waiting: bool, runtime: Runtime) -> Resumed:
    """Unpause the conversation. Unless `answer_waiting`, what waited is first recorded
    unanswered under the conversation's lease (`ConversationBusy` while a worker holds
    it), so only messages arriving from now on are answered."""
    recorded = 0
    if answer_waiting:
        async with runtime.sessionmaker.begin() as db:
            await set_paused(session_id, False, db=db)
    else:
        async with conversation_lease(session_id, runtime=runtime) as lease:
            recorded = await record_waiting(session_id, lease=lease, runtime=runtime)
            async with runtime.sessionmaker.begin() as db:
                await set_paused(session_id, False, db=db)
    # Messages that came while we held the lease found it busy and left them to us.
    async with runtime.sessionmaker() as db:
        arrivals = await pending_arrivals(session_id, db=db)
    return Resumed(recorded, [message_id for message_id, _ in arrivals.messages])
