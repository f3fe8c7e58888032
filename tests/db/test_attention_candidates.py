"""The "needs attention" list reads candidates (`db.attention.attention_candidates`), not
every session: each reason reaches it through the code that makes it true (a turn
failing, a send refused, a delivery status, an operator's reply not getting out, a
pause with messages waiting, a window closing), it never misses a conversation the rule
flags, a recovered conversation leaves it, and the sweeper forgets what recovered.
On Postgres and on the embedded SQLite."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import dashboard_queries, migrate
from db.attention import KEPT_NOTED, forget_recovered, needs_attention
from db.dashboard_queries import SessionsPage, sessions_page
from db.engine import create_engine
from db.models import (
    AgentSessionRow,
    AttentionCandidate,
    Channel,
    InboundMessage,
    OutboundStatus,
    Turn,
)
from db.outbox import apply_delivery_status, mark_send_failed, mark_sent, record_reply
from db.sessions import get_or_create_session
from db.takeover import fail_operator_turn, record_operator_turn, set_paused
from db.turns import finish_turn, start_turn
from tests.factories import builder_with_channel, channel_at
from tests.services import LIBPQ_DSN, ensure_database

NOW = datetime.now(UTC)
_numbers = itertools.count(int(NOW.timestamp()) % 10_000_000)


class Conversations:
    """A builder with a number of its own, and its conversations by name."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.ids: dict[str, uuid.UUID] = {}
        self._minutes = itertools.count()

    async def start(self) -> None:
        address = f"whatsapp:+1415{next(_numbers):07d}"
        self.builder = await builder_with_channel(self.sessions, address=address)
        self.channel: Channel = await channel_at(self.sessions, address)

    async def named(self, name: str) -> uuid.UUID:
        if name not in self.ids:
            async with self.sessions.begin() as db:
                self.ids[name] = await get_or_create_session(
                    self.builder, "whatsapp", f"+3161{next(_numbers):07d}", db=db
                )
        return self.ids[name]

    async def wrote(self, name: str, *, ago: timedelta, status: str = "pending") -> int:
        """An inbound message of the conversation through the builder's number."""
        session_id = await self.named(name)
        async with self.sessions.begin() as db:
            message = InboundMessage(
                provider="twilio",
                provider_message_id=f"SM{uuid.uuid4().hex}",
                channel_id=self.channel.id,
                recipient=self.channel.address,
                sender="whatsapp:+31612340000",
                text="hello",
                media=[],
                payload={},
                status=status,
                session_id=session_id,
                received_at=NOW - ago,
            )
            db.add(message)
            await db.flush()
            return message.id

    async def turn(self, name: str, *, failed: str | None = None) -> uuid.UUID:
        """A turn answering a new message, as the worker runs it (started, finished);
        one minute after the previous (SQLite's clock counts whole seconds)."""
        message = await self.wrote(name, ago=timedelta(hours=1))
        async with self.sessions.begin() as db:
            turn = await start_turn(await self.named(name), [message], db=db)
            await db.flush()
            await self._in_order(turn.id, db=db)
            await finish_turn(turn.id, failed_because=failed, db=db)
        return turn.id

    async def _in_order(self, turn_id: uuid.UUID, *, db: AsyncSession) -> None:
        made = NOW - timedelta(minutes=50) + timedelta(minutes=next(self._minutes))
        await db.execute(update(Turn).where(Turn.id == turn_id).values(created_at=made))

    async def reply(self, name: str, turn_id: uuid.UUID) -> uuid.UUID:
        """The turn's one-part reply, recorded as the worker records it; its id."""
        async with self.sessions.begin() as db:
            [part] = await record_reply(
                session_id=await self.named(name),
                turn_id=turn_id,
                retry=0,
                channel_id=self.channel.id,
                recipient="whatsapp:+31612340000",
                parts=["Here you are."],
                db=db,
            )
        return part.id

    async def delivery(self, part: uuid.UUID, status: str) -> None:
        """The provider took the part, then called back with `status`."""
        provider_id = f"SM{uuid.uuid4().hex}"
        async with self.sessions.begin() as db:
            await mark_sent(part, provider_message_id=provider_id, status="queued", db=db)
            assert await apply_delivery_status(
                provider_id,
                OutboundStatus(status),
                error="Twilio error 63024: x",
                provider="twilio",
                address=self.channel.address,
                db=db,
            )

    async def flagged(self) -> dict[str, tuple[str, ...]]:
        """The list's "needs attention" filter, by name and reasons."""
        names = {session_id: name for name, session_id in self.ids.items()}
        async with self.sessions() as db:
            page = await sessions_page(self.builder, show="attention", per_page=100, db=db)
        return {names[session.id]: session.attention for session in page.sessions}

    async def by_the_rule(self) -> set[str]:
        """What the rule flags, evaluated on every one of the builder's sessions."""
        names = {session_id: name for name, session_id in self.ids.items()}
        async with self.sessions() as db:
            found = await db.scalars(
                select(AgentSessionRow.id).where(
                    AgentSessionRow.builder_id == self.builder, needs_attention(NOW)
                )
            )
            return {names[session_id] for session_id in found}

    async def noted(self) -> set[str]:
        names = {session_id: name for name, session_id in self.ids.items()}
        async with self.sessions() as db:
            found = await db.scalars(
                select(AttentionCandidate.session_id).where(
                    AttentionCandidate.builder_id == self.builder
                )
            )
            return {names[session_id] for session_id in found}

    async def noted_long_ago(self) -> None:
        """Time passes: what was noted is older than `KEPT_NOTED`."""
        async with self.sessions.begin() as db:
            await db.execute(
                update(AttentionCandidate)
                .where(AttentionCandidate.builder_id == self.builder)
                .values(noted_at=NOW - KEPT_NOTED - timedelta(minutes=1))
            )


async def every_reason(sessions: async_sessionmaker[AsyncSession]) -> Conversations:
    """One conversation per way of needing attention, and some that recovered or never
    needed it, each made by the code the worker, the receiver and the dashboard run."""
    made = Conversations(sessions)
    await made.start()
    await made.turn("fine")
    await made.turn("failed", failed="model API 500")
    await made.turn("failed then answered", failed="model API 500")
    await made.turn("failed then answered")
    refused = await made.turn("send refused")
    async with sessions.begin() as db:
        await mark_send_failed(await made.reply("send refused", refused), error="63024", db=db)
    sent_failed = await made.turn("sent as failed")
    async with sessions.begin() as db:
        part = await made.reply("sent as failed", sent_failed)
        await mark_sent(part, provider_message_id=f"SM{uuid.uuid4().hex}", status="failed", db=db)
    for status in ("undelivered", "failed", "delivered"):
        name = f"{status} callback"
        await made.delivery(await made.reply(name, await made.turn(name)), status)
    undelivered_then_answered = await made.turn("undelivered then answered")
    reply = await made.reply("undelivered then answered", undelivered_then_answered)
    await made.delivery(reply, "undelivered")
    await made.turn("undelivered then answered")
    await made.named("operator's reply failed")
    async with sessions.begin() as db:
        operator = await record_operator_turn(made.ids["operator's reply failed"], 0, db=db)
        await made._in_order(operator.id, db=db)
    await made.reply("operator's reply failed", operator.id)
    async with sessions.begin() as db:
        await fail_operator_turn(operator.id, "Twilio error 63016: outside", db=db)
    for name, waiting in (("paused waiting", "pending"), ("paused quiet", "processed")):
        await made.wrote(name, ago=timedelta(minutes=1), status=waiting)
        async with sessions.begin() as db:
            await set_paused(made.ids[name], True, db=db)
    await made.wrote("closing", ago=timedelta(hours=21), status="processed")
    await made.wrote("closed", ago=timedelta(hours=25), status="processed")
    return made


EVERY_REASON = {
    "failed": ("failed turn",),
    "send refused": ("undelivered",),
    "sent as failed": ("undelivered",),
    "undelivered callback": ("undelivered",),
    "failed callback": ("undelivered",),
    "operator's reply failed": ("failed turn", "undelivered"),
    "paused waiting": ("waiting",),
    "closing": ("window closing",),
}
"""What `every_reason` flags, and why (the rest: fine, recovered, quiet or closed)."""


async def test_each_reason_reaches_the_list_and_none_is_missed(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    made = await every_reason(sessions)
    assert await made.flagged() == EVERY_REASON
    assert await made.by_the_rule() == set(EVERY_REASON)
    assert "failed then answered" in await made.noted()  # kept until the sweeper looks


async def test_the_sweeper_forgets_what_recovered_and_keeps_what_did_not(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Only rows noted more than `KEPT_NOTED` ago go (a row noted while the sweeper
    looks is renewed and stays), and only those the rule no longer flags."""
    made = await every_reason(sessions)
    async with sessions.begin() as db:
        await forget_recovered(limit=500, db=db)
    kept_while_recent = await made.noted()
    await made.noted_long_ago()
    async with sessions.begin() as db:
        await forget_recovered(limit=500, db=db)
    assert {"failed then answered", "undelivered then answered"} <= kept_while_recent
    assert await made.noted() == {
        name
        for name, reasons in EVERY_REASON.items()
        if {"failed turn", "undelivered"} & set(reasons)
    }
    assert await made.flagged() == EVERY_REASON


async def test_a_recovered_conversation_leaves_the_list_at_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Noted, then answered: the list re-checks the rule, so the noted row (until the
    sweeper forgets it) changes nothing."""
    made = Conversations(sessions)
    await made.start()
    await made.turn("Ada", failed="model API 500")
    failed = await made.flagged()
    await made.turn("Ada")
    assert failed == {"Ada": ("failed turn",)}
    assert await made.flagged() == {}
    assert await made.noted() == {"Ada"}


@pytest.mark.parametrize("database", ["postgres", "sqlite"])
def test_the_migration_notes_what_is_stored(
    database: str, tmp_path: Path, database_url: str
) -> None:
    """Upgrading a database with conversations notes those whose latest turn failed or
    whose latest reply was not delivered, and no other (on a database of its own)."""
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'wabot.db'}"
    else:
        server, name = database_url.rsplit("/", 1)
        with psycopg.connect(LIBPQ_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}_backfill")
        ensure_database(LIBPQ_DSN, f"{name}_backfill")
        url = f"{server}/{name}_backfill"
    migrate.upgrade(url, "0023")
    asyncio.run(_run(url, *STORED_BEFORE_0024.split(";")))
    migrate.upgrade(url)
    noted = asyncio.run(_run(url, "SELECT session_id FROM session_attention"))
    assert {str(found).replace("-", "")[-2:] for found in noted} == {"02", "04", "07"}


async def _run(url: str, *statements: str) -> list[object]:
    """Run `statements` in one transaction; the last one's first column."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for statement in statements[:-1]:
                if statement.strip():
                    await conn.execute(text(statement))
            if not statements[-1].strip():
                return []
            return list((await conn.execute(text(statements[-1]))).scalars())
    finally:
        await engine.dispose()


def _id(n: int) -> str:
    return f"'00000000-0000-0000-0000-0000000000{n:02d}'"


_SESSIONS = ",\n".join(
    f"    ({_id(n)}, {_id(99)}, 'whatsapp', '{n}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
    for n in range(1, 8)
)
STORED_BEFORE_0024 = f"""
INSERT INTO builders (id, name, instructions, model, search_language)
VALUES ({_id(99)}, 'B', 'Help.', 'gpt-test', 'simple');
INSERT INTO sessions (id, builder_id, platform, external_id, created_at, updated_at,
    next_sequence) VALUES
{_SESSIONS};
INSERT INTO turns (id, session_id, status, attempts, created_at, retries) VALUES
    ({_id(11)}, {_id(1)}, 'replied', 1, '2026-01-01 10:00:00', 0),
    ({_id(12)}, {_id(2)}, 'failed', 1, '2026-01-01 10:00:00', 0),
    ({_id(13)}, {_id(3)}, 'failed', 1, '2026-01-01 10:00:00', 0),
    ({_id(23)}, {_id(3)}, 'replied', 1, '2026-01-01 11:00:00', 0),
    ({_id(14)}, {_id(4)}, 'replied', 1, '2026-01-01 10:00:00', 0),
    ({_id(15)}, {_id(5)}, 'replied', 1, '2026-01-01 10:00:00', 0),
    ({_id(16)}, {_id(6)}, 'replied', 1, '2026-01-01 10:00:00', 0),
    ({_id(26)}, {_id(6)}, 'replied', 1, '2026-01-01 11:00:00', 0),
    ({_id(17)}, {_id(7)}, 'replied', 1, '2026-01-01 10:00:00', 0);
INSERT INTO outbound_messages (id, session_id, turn_id, retry, part, recipient, text, status,
    created_at) VALUES
    ({_id(31)}, {_id(4)}, {_id(14)}, 0, 0, 'r', 't', 'delivered', CURRENT_TIMESTAMP),
    ({_id(41)}, {_id(4)}, {_id(14)}, 0, 1, 'r', 't', 'undelivered', CURRENT_TIMESTAMP),
    ({_id(51)}, {_id(5)}, {_id(15)}, 0, 0, 'r', 't', 'failed', CURRENT_TIMESTAMP),
    ({_id(52)}, {_id(5)}, {_id(15)}, 1, 0, 'r', 't', 'delivered', CURRENT_TIMESTAMP),
    ({_id(61)}, {_id(6)}, {_id(16)}, 0, 0, 'r', 't', 'failed', CURRENT_TIMESTAMP),
    ({_id(71)}, {_id(7)}, {_id(17)}, 0, 0, 'r', 't', 'failed', CURRENT_TIMESTAMP);
"""
"""Conversations 2 (latest turn failed), 4 (a part of its reply undelivered) and 7 (its
reply failed) need attention; 1 (fine), 3 (failed, then answered), 5 (its retry
delivered) and 6 (failed before the latest turn) do not."""


async def test_its_pages_count_what_the_rule_flags(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A full page counts the flagged conversations in the query that reads it; a page
    past the end counts them apart."""
    made = await every_reason(sessions)
    async with sessions() as db:
        pages = [
            await sessions_page(made.builder, show="attention", per_page=3, page=page, db=db)
            for page in (1, 2, 3, 4)
        ]
    assert [(len(page.sessions), page.total, page.exact) for page in pages] == [
        (3, 8, True),
        (3, 8, True),
        (2, 8, True),
        (0, 8, True),
    ]
    names = {session_id: name for name, session_id in made.ids.items()}
    assert {names[s.id] for page in pages for s in page.sessions} == set(EVERY_REASON)


async def test_past_its_exact_count_a_page_checks_its_own_rows_and_says_about_how_many(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more candidates than it counts exactly (a busy builder's thousands; here more
    than 2), the pages list the same conversations in the same order, and a full page or
    one past the end says about how many: as many as the candidates."""
    made = await every_reason(sessions)

    async def pages() -> list[SessionsPage]:
        async with sessions() as db:
            return [
                await sessions_page(made.builder, show="attention", per_page=3, page=page, db=db)
                for page in (1, 2, 3, 4)
            ]

    counted = await pages()
    monkeypatch.setattr(dashboard_queries, "ATTENTION_COUNTED_EXACTLY", 2)
    estimated = await pages()
    listed = [[s.id for s in page.sessions] for page in estimated]
    assert listed == [[s.id for s in page.sessions] for page in counted]
    assert [(page.total, page.exact) for page in counted] == [(8, True)] * 4
    candidates = estimated[0].total
    assert candidates >= 8
    assert [(page.total, page.exact) for page in estimated] == [
        (candidates, False),
        (candidates, False),
        (8, True),
        (candidates, False),
    ]
