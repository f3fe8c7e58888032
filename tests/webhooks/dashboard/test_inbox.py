"""The sessions list as an inbox: each conversation's last message, waiting and unread
counts, the needs-attention / paused / web filters, and search over what was said (by
an index, on Postgres and on the embedded SQLite) or by a whole number only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.agent_session import DatabaseSession
from db.attention import NOT_DELIVERED, note_attention
from db.builders import create_builder
from db.dashboard_queries import items_page, sessions_page
from db.engine import create_engine, create_sessionmaker
from db.models import (
    AgentSessionRow,
    Channel,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
    Turn,
    TurnStatus,
)
from db.sessions import get_or_create_session
from tests.factories import (
    builder_token,
    builder_with_channel,
    post_signed,
    stored_session,
    twilio_form,
)
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, statements_run
from tests.waiting import at_least, eventually
from tests.webhooks.dashboard.conftest import World
from webhooks.dashboard.previews import Preview, previews


async def arrived(
    sessions: async_sessionmaker[AsyncSession],
    session_id: uuid.UUID,
    *,
    status: InboundStatus,
    ago: timedelta = timedelta(minutes=5),
    sender: str = "whatsapp:+4915100000000",
) -> None:
    """An inbound message of the conversation, received `ago`."""
    async with sessions.begin() as db:
        channel = await db.scalar(
            select(Channel)
            .join(AgentSessionRow, AgentSessionRow.builder_id == Channel.builder_id)
            .where(AgentSessionRow.id == session_id)
        )
        assert channel is not None
        db.add(
            InboundMessage(
                provider="twilio",
                provider_message_id=f"SM{uuid.uuid4().hex}",
                channel_id=channel.id,
                recipient=channel.address,
                sender=sender,
                text="hello",
                media=[],
                payload={},
                status=status,
                session_id=session_id,
                received_at=datetime.now(UTC) - ago,
            )
        )


async def replied_turn(
    sessions: async_sessionmaker[AsyncSession],
    session_id: uuid.UUID,
    *,
    part_status: OutboundStatus = OutboundStatus.DELIVERED,
) -> None:
    async with sessions.begin() as db:
        turn = Turn(id=uuid.uuid4(), session_id=session_id, status=TurnStatus.REPLIED, attempts=1)
        db.add(turn)
        await db.flush()
        db.add(
            OutboundMessage(
                session_id=session_id,
                turn_id=turn.id,
                part=0,
                recipient="whatsapp:+4915100000000",
                text="Here you are.",
                status=part_status,
                error="63024 Invalid message recipient"
                if part_status == OutboundStatus.UNDELIVERED
                else None,
            )
        )
        if part_status in NOT_DELIVERED:
            await note_attention(session_id, db=db)  # as the status callback does


async def inbox(sessions: async_sessionmaker[AsyncSession], world: World) -> dict[str, uuid.UUID]:
    """Beside the world's Ada (latest turn failed): Grace paused with two messages
    waiting, Linus whose reply was undelivered, Hopper who wrote 21 hours ago, Quiet
    answered an hour ago, and a web chat."""
    said = {
        "Grace": [{"role": "user", "content": "Do you bake sourdough on Sundays?"}],
        "Linus": [
            {"role": "user", "content": "Any cakes?"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Carrot cake."}]},
        ],
        "Hopper": [{"role": "user", "content": "Thanks, see you"}],
        "Quiet": [{"role": "user", "content": "ok"}],
    }
    ids = {
        name: await stored_session(
            sessions,
            world.builder,
            items,
            external_id=f"+49151000000{n + 10}",
            display_name=name,
        )
        for n, (name, items) in enumerate(said.items())
    }
    ids["web"] = await stored_session(
        sessions,
        world.builder,
        [{"role": "user", "content": "Is the croissant vegan?"}],
        platform="web",
        external_id=f"web-{uuid.uuid4()}",
        display_name=None,
    )
    async with sessions.begin() as db:
        grace = await db.get(AgentSessionRow, ids["Grace"])
        assert grace is not None
        grace.paused_at = datetime.now(UTC)
    for _ in range(2):
        await arrived(sessions, ids["Grace"], status=InboundStatus.PENDING)
    await arrived(sessions, ids["Linus"], status=InboundStatus.PROCESSED)
    await replied_turn(sessions, ids["Linus"], part_status=OutboundStatus.UNDELIVERED)
    await arrived(sessions, ids["Hopper"], status=InboundStatus.PROCESSED, ago=timedelta(hours=21))
    await replied_turn(sessions, ids["Hopper"])
    await arrived(sessions, ids["Quiet"], status=InboundStatus.PROCESSED, ago=timedelta(hours=1))
    await replied_turn(sessions, ids["Quiet"])
    return ids


def by_name(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["display_name"] or "web": s for s in listing["sessions"]}


async def test_the_inbox_shows_last_message_counts_and_what_needs_attention(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await inbox(db_sessions, world)
    url = f"{receiver}/api/builders/{world.builder}/sessions"
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        everyone = by_name((await client.get(url)).json())
        shown = {
            show: sorted(by_name((await client.get(url, params={"show": show})).json()))
            for show in ("attention", "paused", "web")
        }
        bad_show = await client.get(url, params={"show": "everything"})
        page = await client.get(f"{receiver}/builders/{world.builder}?show=attention")
    seen = {
        name: (s["preview"], s["waiting"], s["unread"], s["attention"])
        for name, s in everyone.items()
    }
    assert seen == {
        "Ada": ("Sorry, something went wrong.", 0, 1, ["failed turn"]),
        "Grace": ("Do you bake sourdough on Sundays?", 2, 2, ["waiting"]),
        "Linus": ("Carrot cake.", 0, 1, ["undelivered"]),
        "Hopper": ("Thanks, see you", 0, 1, ["window closing"]),
        "Quiet": ("ok", 0, 1, []),
        "web": ("Is the croissant vegan?", 0, 0, []),
    }
    assert shown == {
        "attention": ["Ada", "Grace", "Hopper", "Linus"],
        "paused": ["Grace"],
        "web": ["web"],
    }
    assert bad_show.status_code == 400 and "show must be one of" in bad_show.json()["error"]
    assert page.status_code == 200
    assert "2 waiting" in page.text and "Bot:</span> Carrot cake." in page.text
    assert "Quiet" not in page.text and "window closing" in page.text


async def test_opening_a_conversation_or_seeing_it_update_clears_its_unread_count(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    url = f"{receiver}/api/builders/{world.builder}/sessions"
    engine = db_sessions.kw["bind"]
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:

        async def unread() -> int:
            [listed] = (await client.get(url)).json()["sessions"]
            return int(listed["unread"])

        counts = [await unread()]
        opened = await client.get(f"{receiver}/sessions/{world.session}")
        counts.append(await unread())
        await arrived(db_sessions, world.session, status=InboundStatus.PENDING, ago=timedelta())
        counts.append(await unread())
        updates = f"{receiver}/sessions/{world.session}/updates?after=5"
        nothing_new = (await client.get(updates)).json()
        counts.append(await unread())
        await DatabaseSession(world.session, engine=engine).add_items(
            [{"role": "user", "content": "Are you there?"}]
        )
        shown = (await client.get(updates)).json()
        counts.append(await unread())
    assert opened.status_code == 200
    assert nothing_new["entries"].strip() == ""
    assert "Are you there?" in shown["entries"]
    assert counts == [1, 0, 1, 1, 0]


async def test_search_finds_what_was_said_and_a_number_only_whole(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await inbox(db_sessions, world)
    url = f"{receiver}/api/builders/{world.builder}/sessions"
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:

        async def found(q: str) -> list[str]:
            listing = (await client.get(url, params={"q": q})).json()
            return sorted(s["display_name"] or "web" for s in listing["sessions"])

        results = {
            q: await found(q)
            for q in (
                "sourdough",  # a user's word
                "SUNDAYS bake",  # every word, any order and case
                "carrot",  # the bot's words count too
                "croissant",  # a web chat
                "sourdough croissant",  # no one message holds both
                "current_time",  # a tool's name is not something said
                "+4915100000010",  # Grace's whole number
                "49 1510 0000 010",  # written another way
                "+491510000001",  # a prefix of it
                "0000010",  # its tail
            )
        }
    assert results == {
        "sourdough": ["Grace"],
        "SUNDAYS bake": ["Grace"],
        "carrot": ["Linus"],
        "croissant": ["web"],
        "sourdough croissant": [],
        "current_time": [],
        "+4915100000010": ["Grace"],
        "49 1510 0000 010": ["Grace"],
        "+491510000001": [],
        "0000010": [],
    }


async def test_the_inbox_query_and_a_live_update_read_only_by_index(
    world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """With sequential scans priced out (as 10M items would), the inbox's page query,
    searched and filtered, finds what was said through `ix_session_items_search` (it
    repeats the index's expression exactly), and reads every per-session column of the
    page by an index led by the session id; a live update's `items_page(after=N)`
    reads `session_items_seq_unique`. (The page query's plan: `hashed SubPlan` → `Bitmap
    Index Scan on ix_session_items_search`, once per query, not per session.)"""
    engine = db_sessions.kw["bind"]
    with statements_run(engine) as statements:
        async with db_sessions() as db:
            found = await sessions_page(world.builder, search="noon", show="attention", db=db)
            newer, _ = await items_page(world.session, after=4, db=db)
    page_query, live_update = statements[-2:]
    async with engine.begin() as conn:
        await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plans = [
            "\n".join((await conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)).scalars())
            for statement, parameters in (page_query, live_update)
        ]
    assert [s.id for s in found.sessions] == [world.session]
    assert [item.sequence for item in newer] == [5]
    assert "Bitmap Index Scan on ix_session_items_search" in plans[0], plans[0]
    assert "Seq Scan" not in plans[0], plans[0]
    assert "session_items_seq_unique" in plans[1], plans[1]
    assert "Seq Scan" not in plans[1], plans[1]


async def test_the_embedded_sqlite_searches_and_filters_the_inbox(sqlite_url: str) -> None:
    """The demo's SQLite finds words through its FTS5 table, kept by triggers, and
    counts, filters and previews as Postgres does."""
    engine = create_engine(sqlite_url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions.begin() as db:
            builder = await create_builder(
                name="Embedded", instructions="Help.", model="gpt-test", db=db
            )
            session_id = await get_or_create_session(
                builder.id, "whatsapp", "+31600000001", display_name="Mia", db=db
            )
            reacted = await get_or_create_session(
                builder.id, "whatsapp", "+31600000002", display_name="Noor", db=db
            )
            db.add(Turn(id=uuid.uuid4(), session_id=reacted, status="replied", input_sequence=0))
        await DatabaseSession(reacted, engine=engine).add_items(
            [{"role": "user", "content": "[reacted 👍 to an earlier message]"}]
        )
        await DatabaseSession(session_id, engine=engine).add_items(
            [
                {"role": "user", "content": "Do you deliver rye bread?"},
                {
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Only on Fridays."}],
                },
            ]
        )
        async with sessions.begin() as db:
            mia = await db.get(AgentSessionRow, session_id)
            assert mia is not None
            mia.paused_at = datetime.now(UTC)
            db.add(
                InboundMessage(
                    provider="twilio",
                    provider_message_id=f"SM{uuid.uuid4().hex}",
                    recipient="whatsapp:+14155550100",
                    sender="whatsapp:+31600000001",
                    text="Hello?",
                    media=[],
                    payload={},
                    status=InboundStatus.PENDING,
                    session_id=session_id,
                )
            )
        async with sessions() as db:
            [waiting] = (await sessions_page(builder.id, show="attention", db=db)).sessions
            everyone = (await sessions_page(builder.id, db=db)).sessions
            shown = await previews(everyone, db=db)
            results = {
                q: [
                    s.display_name
                    for s in (await sessions_page(builder.id, search=q, db=db)).sessions
                ]
                for q in (
                    "rye",
                    "Fridays",
                    "rye fridays",
                    "pumpernickel",
                    "+31600000001",
                    "+3160000",
                )
            }
    finally:
        await engine.dispose()
    assert (waiting.display_name, waiting.waiting, waiting.unread, waiting.attention) == (
        "Mia",
        1,
        1,
        ("waiting",),
    )
    assert {s.display_name: shown[s.id] for s in everyone} == {
        "Mia": Preview("assistant", "Only on Fridays."),
        "Noor": Preview("user", "👍 reaction"),
    }
    assert results == {
        "rye": ["Mia"],
        "Fridays": ["Mia"],
        "rye fridays": [],
        "pumpernickel": [],
        "+31600000001": ["Mia"],
        "+3160000": [],
    }


async def test_a_turn_shows_its_model_latency_tokens_and_id_on_demand(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    """The worker records what its run cost on the turn; the conversation header says
    which number and provider the conversation came through, and for which builder."""
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    async with httpx.AsyncClient() as client:
        webhook = f"{live_receiver}/webhooks/twilio"
        assert (await post_signed(client, webhook, twilio_form("Hello there"))).status_code == 200
        await at_least(fake_twilio.messages, 1, what="the bot's reply")
        await eventually(lambda: all_answered(db_sessions), what="the turn to finish")
        async with db_sessions() as db:
            turn = await db.scalar(select(Turn))
        assert turn is not None
        client.headers["Authorization"] = f"Bearer {token}"
        page = (await client.get(f"{live_receiver}/sessions/{turn.session_id}")).text
    assert (turn.model, turn.input_tokens, turn.output_tokens) == ("gpt-test", 10, 5)
    assert turn.latency_ms is not None and turn.latency_ms >= 0
    details = page[page.index('<details class="turn-details">') :]
    assert f'<code class="turn-id">{turn.id}</code>' in details
    assert '<dd class="turn-model">gpt-test</dd>' in details
    assert f'<dd class="turn-latency">{turn.latency_ms} ms</dd>' in details
    assert '<dd class="turn-tokens">10 in · 5 out</dd>' in details
    assert '<dd id="origin-number">Twilio · whatsapp:+14155238886</dd>' in page
    assert '<dd id="origin-builder">Test Bakery</dd>' in page
