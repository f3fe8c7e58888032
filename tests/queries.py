"""Read-only helpers tests use to look at what the service stored."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db.models import AgentSessionRow, InboundMessage, OutboundMessage, SessionItem, Turn


async def all_items(sessions: async_sessionmaker[AsyncSession]) -> list[dict[str, Any]]:
    """Every session item of every session, by session then sequence."""
    async with sessions() as db:
        rows = await db.scalars(
            select(SessionItem).order_by(SessionItem.session_id, SessionItem.sequence)
        )
        return [row.item_data for row in rows]


async def inbound_messages(sessions: async_sessionmaker[AsyncSession]) -> list[InboundMessage]:
    """The inbox, in arrival order."""
    async with sessions() as db:
        return list(await db.scalars(select(InboundMessage).order_by(InboundMessage.id)))


async def inbound_texts(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    """The texts recorded in the inbox, in arrival order."""
    async with sessions() as db:
        return list(await db.scalars(select(InboundMessage.text).order_by(InboundMessage.id)))


async def outbound_messages(sessions: async_sessionmaker[AsyncSession]) -> list[OutboundMessage]:
    async with sessions() as db:
        return list(
            await db.scalars(
                select(OutboundMessage).order_by(OutboundMessage.created_at, OutboundMessage.part)
            )
        )


async def turns(sessions: async_sessionmaker[AsyncSession]) -> list[Turn]:
    async with sessions() as db:
        return list(await db.scalars(select(Turn).order_by(Turn.created_at)))


def kind(item: dict[str, Any]) -> str:
    """`user`, `assistant`, or the item type (`function_call`, `function_call_output`)."""
    if item.get("type", "message") == "message":
        return str(item.get("role"))
    return str(item["type"])


async def all_answered(sessions: async_sessionmaker[AsyncSession]) -> bool:
    """No inbox message is still open and no conversation is leased: the workers are done."""
    async with sessions() as db:
        open_messages = await db.scalar(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.status.in_(["pending", "processing"]))
        )
        leased = await db.scalar(
            select(func.count())
            .select_from(AgentSessionRow)
            .where(AgentSessionRow.lease_token.is_not(None))
        )
    return open_messages == 0 and leased == 0


@contextmanager
def statements_run(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every statement `engine` runs in the block, with its parameters, in order (to
    EXPLAIN them afterwards)."""
    statements: list[tuple[str, Any]] = []

    def captured(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", captured)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", captured)
