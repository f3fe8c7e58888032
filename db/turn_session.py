"""The `DatabaseSession` a worker hands the runner: fenced by the conversation's lease,
and marking the turn's input saved in the same transaction that stores it."""

from __future__ import annotations

import uuid

from agents.items import TResponseInputItem
from agents.memory import SessionSettings
from sqlalchemy.ext.asyncio import AsyncEngine

from db.agent_session import DatabaseSession
from db.statements import StatementConnections
from db.turns import InputSaved


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
        """`history_window`: how many of the latest items the runner reads (0: all),
        from the first user message among them."""
        super().__init__(
            session_id,
            engine=engine,
            session_settings=SessionSettings(limit=history_window or None),
            fencing_token=lease_token,
            statements=statements,
            window_from_user_message=True,
        )
        self._unsaved_input = InputSaved(turn_id) if saves_input else None

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """The runner's first batch is the user input: it is marked saved atomically with
        the items, so a retry of this turn continues with `input=[]` instead of storing
        the message twice. On Postgres both are one statement, like later batches."""
        if self._unsaved_input is None or not items:
            await super().add_items(items)
            return
        await self.add_items_marked(items, mark=self._unsaved_input)
        self._unsaved_input = None
