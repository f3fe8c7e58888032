"""The inbox writer records everything that waits in one statement; a value the database
still refuses costs only the request that carried it (422 naming the column), never the
other requests of its batch, which are recorded in arrival order."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.exceptions import HTTPException

from db.core.settings import Settings
from db.engine import create_engine, create_sessionmaker
from db.inbox import ReceivedMessage, Recorded
from db.models import InboundMessage
from db.statements import StatementConnections
from tests.factories import received_twilio_text
from webhooks.inbox_writer import InboxWriter
from worker.celery_app import create_celery


@pytest.fixture(params=["postgres", "sqlite"])
async def writer(
    request: pytest.FixtureRequest,
    settings: Settings,
    database_url: str,
    sqlite_url: str,
    db_sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[InboxWriter, async_sessionmaker[AsyncSession]]]:
    """The receiver's writer on each backend (Postgres: its persistent connection),
    publishing to a queue no worker reads."""
    celery = create_celery(
        settings.model_copy(update={"celery_queue": f"wabot-idle-{uuid.uuid4().hex[:8]}"})
    )
    if request.param == "postgres":
        sessions, engine = db_sessions, None
        statements: StatementConnections | None = StatementConnections(database_url, size=1)
    else:
        engine = create_engine(sqlite_url)
        sessions, statements = create_sessionmaker(engine), None
        async with sessions.begin() as db:
            await db.execute(InboundMessage.__table__.delete())
    writer = InboxWriter(sessions, celery, statements=statements)
    yield writer, sessions
    await writer.aclose()
    if engine is not None:
        await engine.dispose()


async def record_at_once(
    writer: InboxWriter, requests: list[list[ReceivedMessage]]
) -> list[list[Recorded] | BaseException]:
    """Hand every request over before the writer's flusher runs: one batch."""
    return await asyncio.gather(
        *(writer.record(messages) for messages in requests), return_exceptions=True
    )


async def inbox_texts(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as db:
        return list(await db.scalars(select(InboundMessage.text).order_by(InboundMessage.id)))


async def test_a_request_that_cannot_be_stored_is_answered_alone(
    writer: tuple[InboxWriter, async_sessionmaker[AsyncSession]],
) -> None:
    inbox, sessions = writer
    goods = [[received_twilio_text(f"good {n}")] for n in range(9)]
    # Past the webhooks' own parsing: a payload JSON cannot hold.
    refused = dataclasses.replace(received_twilio_text("refused"), payload={"x": object()})

    outcomes = await record_at_once(inbox, [*goods[:4], [refused], *goods[4:]])

    refusal = outcomes.pop(4)
    assert isinstance(refusal, HTTPException) and refusal.status_code == 422
    assert "nothing of it was recorded" in refusal.detail
    assert all(isinstance(outcome, list) and outcome[0].inbound_id for outcome in outcomes)
    assert await inbox_texts(sessions) == [f"good {n}" for n in range(9)]


@pytest.mark.parametrize("writer", ["postgres"], indirect=True)
async def test_a_refusal_names_the_column_the_database_names(
    writer: tuple[InboxWriter, async_sessionmaker[AsyncSession]],
) -> None:
    inbox, sessions = writer
    kindless: Any = None  # the column is NOT NULL
    refused = dataclasses.replace(received_twilio_text("refused"), kind=kindless)

    outcomes = await record_at_once(inbox, [[received_twilio_text("good")], [refused]])

    refusal = outcomes[1]
    assert isinstance(refusal, HTTPException) and refusal.status_code == 422
    assert "(column kind)" in refusal.detail
    assert await inbox_texts(sessions) == ["good"]


@pytest.mark.parametrize("writer", ["postgres"], indirect=True)
async def test_an_id_too_long_to_index_costs_only_its_own_request(
    writer: tuple[InboxWriter, async_sessionmaker[AsyncSession]],
) -> None:
    """Postgres indexes at most 2,704 bytes of a row's key; the webhooks refuse longer ids
    themselves, so this one comes past them."""
    inbox, sessions = writer
    goods = [[received_twilio_text(f"good {n}")] for n in range(5)]
    unindexable = dataclasses.replace(
        received_twilio_text("refused"), provider_message_id="SM" + secrets.token_urlsafe(6000)
    )

    outcomes = await record_at_once(inbox, [goods[0], [unindexable], *goods[1:]])

    refusal = outcomes[1]
    assert isinstance(refusal, HTTPException) and refusal.status_code == 422
    assert "provider_message_id" in refusal.detail
    assert unindexable.provider_message_id[:20] not in refusal.detail
    assert await inbox_texts(sessions) == [f"good {n}" for n in range(5)]
