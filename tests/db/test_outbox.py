"""A reply is recorded whole, once per try of its turn: as one ORM statement in any unit
of work, and as one statement on a persistent connection in the worker's autocommit
units of work on Postgres (`db.prepared.autocommit_sessionmaker`). Both give back the
parts as the database holds them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import OutboundMessage, Turn
from db.offered_options import OfferedOptions
from db.outbox import record_reply, replies_of
from db.prepared import autocommit_sessionmaker
from db.sessions import get_or_create_session
from db.statements import StatementConnections
from tests.db.test_sessions import a_builder

PARTS = ["First part.", "Second part, with a 'quote' and ünïcode.", "Which day suits you?"]
OPTIONS = OfferedOptions(("Monday", "Tuesday"), list_button="Days")
COLUMNS = ("part", "text", "status", "options", "recipient", "retry", "provider_message_id")


@pytest.fixture(params=["one statement on a persistent connection", "the ORM"])
async def recording(
    request: pytest.FixtureRequest,
    db_sessions: async_sessionmaker[AsyncSession],
    database_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Where the worker records a text reply (Postgres), and any other unit of work."""
    if request.param == "the ORM":
        yield db_sessions
        return
    statements = StatementConnections(database_url, size=1)
    yield autocommit_sessionmaker(db_sessions.kw["bind"], statements)
    await statements.aclose()


async def a_turn(sessions: async_sessionmaker[AsyncSession]) -> Turn:
    builder_id = await a_builder(sessions)
    async with sessions.begin() as db:
        session_id = await get_or_create_session(builder_id, "whatsapp", "+1", db=db)
        turn = Turn(id=uuid.uuid4(), session_id=session_id, status="running", attempts=1)
        db.add(turn)
    return turn


async def record(
    sessions: async_sessionmaker[AsyncSession], turn: Turn, parts: list[str]
) -> list[OutboundMessage]:
    async with sessions.begin() as db:
        return await record_reply(
            session_id=turn.session_id,
            turn_id=turn.id,
            retry=0,
            channel_id=None,
            recipient="whatsapp:+31612345678",
            parts=parts,
            options=OPTIONS,
            db=db,
        )


def shown(replies: list[OutboundMessage]) -> list[tuple[Any, ...]]:
    return [(reply.id, *(getattr(reply, name) for name in COLUMNS)) for reply in replies]


async def test_a_reply_is_recorded_whole_with_its_options_on_the_last_part(
    recording: async_sessionmaker[AsyncSession], db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    turn = await a_turn(db_sessions)
    recorded = await record(recording, turn, PARTS)
    async with db_sessions() as db:
        stored = await replies_of(turn.id, retry=0, db=db)
    assert shown(recorded) == shown(stored)
    assert [(reply.text, reply.status, reply.options) for reply in stored] == [
        (PARTS[0], "sending", None),
        (PARTS[1], "pending", None),
        (PARTS[2], "pending", OPTIONS.as_json()),
    ]
    assert all(reply.created_at is not None for reply in recorded)


async def test_recording_a_try_again_gives_back_the_parts_it_recorded(
    recording: async_sessionmaker[AsyncSession], db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    turn = await a_turn(db_sessions)
    first = await record(recording, turn, PARTS)
    again = await record(recording, turn, ["Another answer the run came to."])
    assert shown(again) == shown(first)
