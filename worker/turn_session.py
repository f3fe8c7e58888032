"""The `DatabaseSession` a worker hands the runner: it records the turn's progress in
the same transaction as the items, and refuses to write for a worker that lost its lease."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.agent_session import DatabaseSession
from db.conversations import holds_lease
from db.turns import mark_input_saved


class LeaseLostError(RuntimeError):
    """Another worker took the conversation over (our lease expired); stop writing."""


class TurnSession(DatabaseSession):
    def __init__(
        self,
        session_id: uuid.UUID,
        *,
        engine: AsyncEngine,
        turn_id: uuid.UUID,
        lease_token: uuid.UUID,
        saves_input: bool,
    ) -> None:
        super().__init__(session_id, engine=engine)
        self._turn_id = turn_id
        self._lease_token = lease_token
        self._input_unsaved = saves_input

    async def _after_append(
        self, conn: AsyncConnection, first_sequence: int, items: Sequence[Any]
    ) -> None:
        """The runner's first batch is the user input: mark it saved atomically, so a retry
        of this turn continues with `input=[]` instead of storing the message twice."""
        if not await holds_lease(self._id, self._lease_token, db=conn):
            raise LeaseLostError(f"session {self.session_id} is leased to another worker")
        if self._input_unsaved:
            await mark_input_saved(self._turn_id, first_sequence, db=conn)
            self._input_unsaved = False
