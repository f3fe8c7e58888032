"""`wabot retry` end to end: a real process on Postgres hands failed turns back to the
real worker, which answers them; bad requests are one-line errors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.inbox import fail_inbound, record_inbound
from db.models import InboundMessage, Turn
from db.sessions import get_or_create_session
from db.takeover import set_paused
from db.turns import finish_turn, start_turn
from tests.conftest import Wabot
from tests.factories import (
    builder_with_channel,
    post_signed,
    received_twilio_text,
    twilio_form,
)
from tests.fakes.openai import Failure, FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, inbound_messages, turns
from tests.waiting import at_least, eventually

ADA = "whatsapp:+31612345678"
BOB = "whatsapp:+31687654321"


async def test_failed_turns_are_answered_once_retried(
    wabot: Wabot,
    db_sessions: async_sessionmaker[AsyncSession],
    service_env: dict[str, str],
    celery_worker: Path,
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    broker = {key: service_env[key] for key in ("CELERY_BROKER_URL", "CELERY_QUEUE")}
    await builder_with_channel(db_sessions)
    fake_openai.failures += [Failure(400), Failure(400)]  # the model refuses, for good
    async with httpx.AsyncClient() as client:
        for text, sender in (("Order bread", ADA), ("Order cake", BOB)):
            form = twilio_form(text, sender=sender)
            assert (await post_signed(client, f"{live_receiver}/webhooks/twilio", form)).is_success
    await at_least(fake_twilio.messages, 2, what="the fallback replies")
    await eventually(partial(all_answered, db_sessions), what="both turns to fail")
    failed = {m.text: m for m in await inbound_messages(db_sessions)}
    assert {m.status for m in failed.values()} == {"failed"}

    retried = wabot("retry", str(failed["Order bread"].session_id), "--json", env=broker)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {
        "turns": [str(failed["Order bread"].turn_id)],
        "messages": 1,
        "conversations": [str(failed["Order bread"].session_id)],
        "paused_turns": [],
        "enqueued": True,
    }
    sent = await at_least(fake_twilio.messages, 3, what="the retried turn's reply")
    assert (sent[2]["Body"], sent[2]["To"]) == ("You said: Order bread", ADA)

    again = wabot("retry", "--turn", str(failed["Order bread"].turn_id), env=broker)
    assert (again.returncode, again.stderr.strip()) == (
        1,
        f"Error: turn {failed['Order bread'].turn_id} cannot be retried: it replied",
    )
    everything = wabot("retry", "--all", env=broker)
    assert (everything.returncode, everything.stdout.strip()) == (
        0,
        "retrying 1 failed turn(s): 1 message(s) handed back in 1 conversation(s)",
    )
    sent = await at_least(fake_twilio.messages, 4, what="the other retried reply")
    assert (sent[3]["Body"], sent[3]["To"]) == ("You said: Order cake", BOB)
    await eventually(partial(all_answered, db_sessions), what="the retried turns to finish")
    assert {m.status for m in await inbound_messages(db_sessions)} == {"processed"}
    assert sorted(t.status for t in await turns(db_sessions)) == ["replied", "replied"]


async def failed_message(
    sessions: async_sessionmaker[AsyncSession], builder_id: uuid.UUID, sender: str, *, turn: bool
) -> int:
    """A message that failed: in a turn of its conversation, or before it had one."""
    received = received_twilio_text(sender=sender)
    async with sessions.begin() as db:
        [recorded] = await record_inbound([received], db=db)
        assert recorded.inbound_id is not None
        if not turn:
            await fail_inbound(recorded.inbound_id, error="its channel was removed", db=db)
            return recorded.inbound_id
        session_id = await get_or_create_session(builder_id, "whatsapp", sender, db=db)
        message = await db.get(InboundMessage, recorded.inbound_id)
        assert message is not None
        message.session_id = session_id
        started = await start_turn(session_id, [recorded.inbound_id], db=db)
        await finish_turn(started.id, failed_because="model API 400: bad request", db=db)
    return recorded.inbound_id


async def test_retry_explains_what_it_cannot_do_and_leaves_the_rest_to_the_sweeper(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = await builder_with_channel(db_sessions)
    paused = await failed_message(db_sessions, builder_id, ADA, turn=True)
    waiting = await failed_message(db_sessions, builder_id, BOB, turn=True)
    orphan = await failed_message(db_sessions, builder_id, "whatsapp:+4915112345678", turn=False)
    async with db_sessions.begin() as db:
        paused_session = await db.scalar(
            select(InboundMessage.session_id).where(InboundMessage.id == paused)
        )
        assert paused_session is not None
        await set_paused(paused_session, True, db=db)
    unreachable = {"CELERY_BROKER_URL": "redis://127.0.0.1:9/0"}

    refused = wabot("retry", str(paused_session), env=unreachable)
    assert (refused.returncode, refused.stderr.strip()) == (
        1,
        f"Error: conversation {paused_session} is paused (an operator took over);"
        " resume it in the dashboard to retry",
    )
    unknown = uuid.uuid4()
    missing = wabot("retry", str(unknown), env=unreachable)
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        f"Error: no conversation with id {unknown}",
    )
    misused = wabot("retry", "--builder", str(builder_id), env=unreachable)
    assert misused.returncode == 2 and "--builder goes with --all" in misused.stderr

    retried = wabot("retry", "--all", "--builder", str(builder_id), env=unreachable)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.splitlines() == [
        "retrying 1 failed turn(s): 1 message(s) handed back in 1 conversation(s)",
        "left 1 failed turn(s) alone: their conversation is paused (an operator took over);"
        " resume it in the dashboard to retry",
        "the broker is unreachable: the messages wait as pending, and a worker's sweeper"
        " hands them over once they have waited SWEEP_STALE_SECONDS",
    ]
    nothing = wabot("retry", "--all", env=unreachable)
    assert (nothing.returncode, nothing.stderr.strip()) == (
        1,
        "Error: nothing to retry: the 1 failed turn(s) are in paused conversations;"
        " resume them in the dashboard first",
    )

    inbox = {m.id: m for m in await inbound_messages(db_sessions)}
    assert {key: inbox[key].status for key in (paused, waiting, orphan)} == {
        paused: "failed",
        waiting: "pending",
        orphan: "failed",
    }
    enqueued_at = inbox[waiting].enqueued_at
    assert enqueued_at is not None  # the sweeper counts its wait from the retry
    assert datetime.now(UTC) - enqueued_at < timedelta(minutes=1)
    assert inbox[waiting].turn_id is not None and inbox[waiting].error is None
    async with db_sessions() as db:
        statuses = sorted(await db.scalars(select(Turn.status)))
    assert statuses == ["failed", "running"]  # reopened, for a worker to answer
