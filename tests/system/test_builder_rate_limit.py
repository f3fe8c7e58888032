"""A builder's own per-sender rate limit, set with `wabot builder create
--turns-per-minute` and kept by the real worker process: past it a sender's message
waits in the inbox, its task scheduled for when the minute is up, while another
builder's senders are answered at once."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from celery import Celery
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import add_channel
from db.core.clock import as_utc
from db.core.settings import Settings
from db.models import Turn
from tests.conftest import Wabot
from tests.factories import BOT_NUMBER, builder_with_channel, post_signed, twilio_form
from tests.fakes.twilio import FakeTwilio
from tests.logs import json_lines
from tests.queries import all_answered, inbound_messages, turns
from tests.waiting import at_least, eventually
from worker.celery_app import create_celery, enqueue_inbound

OTHER_NUMBER = "whatsapp:+14155230000"


def node_name(worker_log: Path) -> str:
    """The worker's Celery node name, as its start-up line gives it."""
    [name] = [
        line["message"].split(" starting: ")[0]
        for line in json_lines(worker_log)
        if " starting: queue(s) " in line["message"]
    ]
    return str(name)


def scheduled_for(celery: Celery, node: str, inbound_id: int) -> datetime | None:
    """When the worker will run the task of `inbound_id` again, as it reports over
    Celery's remote control (`celery inspect scheduled`); None if it holds no such task."""
    replies = celery.control.inspect(destination=[node], timeout=5, limit=1).scheduled() or {}
    tasks: list[dict[str, Any]] = replies.get(node, [])
    return next(
        (datetime.fromisoformat(t["eta"]) for t in tasks if t["request"]["args"] == [inbound_id]),
        None,
    )


async def test_a_builders_own_rate_holds_its_sender_back_and_nobody_else(
    wabot: Wabot,
    db_sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    celery_worker: Path,
    live_receiver: str,
    fake_twilio: FakeTwilio,
) -> None:
    created = wabot(
        "builder",
        "create",
        "--name",
        "Bakery",
        "--instructions",
        "Sell bread.",
        "--turns-per-minute",
        "1",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    async with db_sessions.begin() as db:
        limited = uuid.UUID(json.loads(created.stdout)["id"])
        await add_channel(limited, provider="twilio", address=BOT_NUMBER, db=db)
    await builder_with_channel(db_sessions, address=OTHER_NUMBER)  # SENDER_TURNS_PER_MINUTE
    with create_celery(settings) as celery:
        await converse(db_sessions, celery, node_name(celery_worker), live_receiver, fake_twilio)


async def converse(
    sessions: async_sessionmaker[AsyncSession],
    celery: Celery,
    node: str,
    receiver: str,
    fake_twilio: FakeTwilio,
) -> None:
    """Two messages to each builder from one user, the second once the first is answered."""
    async with httpx.AsyncClient() as client:

        async def whatsapp(text: str, to: str) -> None:
            form = twilio_form(text, to=to)
            response = await post_signed(client, f"{receiver}/webhooks/twilio", form)
            assert response.status_code == 200

        await whatsapp("one", BOT_NUMBER)
        await whatsapp("uno", OTHER_NUMBER)
        await at_least(fake_twilio.messages, 2, what="first replies")
        # Both turns closed and leases let go: the next messages' own tasks take them.
        await eventually(partial(all_answered, sessions), what="the first turns closed")
        await whatsapp("two", BOT_NUMBER)
        await whatsapp("dos", OTHER_NUMBER)
        await at_least(fake_twilio.messages, 3, what="the other builder's second reply")

    async def second_turn_closed() -> bool:
        """Its reply is sent before its turn is closed."""
        return any(
            m.text == "dos" and m.status == "processed" for m in await inbound_messages(sessions)
        )

    await eventually(second_turn_closed, what="the other builder's second turn closed")
    [two_id] = [m.id for m in await inbound_messages(sessions) if m.text == "two"]
    eta = await eventually(
        partial(asyncio.to_thread, scheduled_for, celery, node, two_id),
        what="the worker to schedule the limited sender's message",
    )
    inbox = {m.text: m for m in await inbound_messages(sessions)}
    two = inbox["two"]
    assert (two.status, two.turn_id) == ("pending", None)
    assert inbox["dos"].status == "processed"
    [first_turn] = [t for t in await turns(sessions) if t.id == inbox["one"].turn_id]
    # Scheduled for when the sender's minute is up, not retried before.
    assert abs(eta - as_utc(first_turn.created_at) - timedelta(minutes=1)) < timedelta(seconds=2)
    assert sorted(m["Body"] for m in fake_twilio.messages) == [
        "You said: dos",
        "You said: one",
        "You said: uno",
    ]

    # The minute passes (its turn is backdated) and the message is published again, as
    # the sweeper would: now it is answered.
    async with sessions.begin() as db:
        await db.execute(
            update(Turn)
            .where(Turn.id == first_turn.id)
            .values(created_at=Turn.created_at - timedelta(minutes=1))
        )
    assert await enqueue_inbound(celery, [two.id])
    replies = await at_least(fake_twilio.messages, 4, what="the held-back reply")
    assert replies[-1]["Body"] == "You said: two"
    await eventually(partial(all_answered, sessions), what="every message answered")
