"""The `DatabaseSession` a worker hands the runner: fenced by the conversation's lease,
and marking the turn's input saved in the same transaction that stores it."""

from __future__ import annotations

import uuid

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from db.agent_session import DatabaseSession, append_statement, stored_items
from db.statements import StatementConnections
from db.turns import MARK_INPUT_SAVED, mark_input_saved

_PG_APPEND_INPUT = append_statement(MARK_INPUT_SAVED)


class TurnSession(DatabaseSession):
    def __init__(
        self,
        session_id: uuid.UUID,
        *,
        engine: AsyncEngine,
        turn_id: uuid.UUID,
        lease_token: uuid.UUID,
        saves_input: bool,
        history_window: int = 0,
        statements: StatementConnections | None = None,
    ) -> None:
        """`history_window`: how many of the latest items the runner reads (0: all)."""
        super().__init__(
            session_id,
            engine=engine,
            session_settings=SessionSettings(limit=history_window or None),
            fencing_token=lease_token,
            statements=statements,
        )
        self._turn_id = turn_id
        self._input_unsaved = saves_input

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """The runner's first batch is the user input: it is marked saved atomically with
        the items, so a retry of this turn continues with `input=[]` instead of storing
        the message twice. On Postgres both are one statement, like later batches."""
        if not (self._input_unsaved and items):
            await super().add_items(items)
            return
        stored = stored_items(items)
        if self._postgres:
            params = {**self._append_params(stored), "turn_id": self._turn_id}
            await self._append_alone(_PG_APPEND_INPUT, params)
            self._input_unsaved = False
            return
        async with self._engine.begin() as conn:
            first_sequence = await self._append(conn, stored)
            await mark_input_saved(self._turn_id, first_sequence, db=conn)
        self._input_unsaved = False
