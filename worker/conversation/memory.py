"""A conversation's memory (the history the agent reads), cleared by an operator."""

from __future__ import annotations

import uuid

from db.agent_session import DatabaseSession
from db.takeover import forget_turn_positions
from worker.conversation.lease import conversation_lease
from worker.process.runtime import Runtime


async def clear_memory(session_id: uuid.UUID, *, runtime: Runtime) -> None:
    """Forget the history, so the agent starts the conversation afresh; under its lease,
    so no turn writes to it meanwhile (`ConversationBusy` while one holds it)."""
    async with conversation_lease(session_id, runtime=runtime) as lease:
        history = DatabaseSession(session_id, engine=runtime.engine, fencing_token=lease.token)
        await history.clear_session()
        async with runtime.sessionmaker.begin() as db:
            await forget_turn_positions(session_id, db=db)
