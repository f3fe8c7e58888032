"""`wabot inbox` and `wabot conversation show` against what the service stored."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.inbox import record_inbound
from db.models import AgentSessionRow, InboundMessage
from tests.conftest import Wabot
from tests.factories import (
    builder_with_channel,
    received_twilio_text,
    stored_session,
    tool_exchange,
)


async def inbound(sessions: async_sessionmaker[AsyncSession], status: str, age: timedelta) -> None:
    received = received_twilio_text(profile_name="Ada")
    async with sessions.begin() as db:
        [recorded] = await record_inbound([received], db=db)
        await db.execute(
            update(InboundMessage)
            .where(InboundMessage.id == recorded.inbound_id)
            .values(status=status, received_at=datetime.now(UTC) - age)
        )


async def test_the_inbox_counts_waiting_running_and_failed_messages_by_age(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await builder_with_channel(db_sessions)
    for status, age in [
        ("pending", timedelta(seconds=5)),
        ("pending", timedelta(minutes=10)),
        ("processing", timedelta(seconds=20)),
        ("failed", timedelta(hours=3)),
        ("failed", timedelta(days=2)),
        ("processed", timedelta(seconds=1)),
    ]:
        await inbound(db_sessions, status, age)

    result = wabot("inbox", "--json")
    assert result.returncode == 0, result.stderr
    counts = {
        status: {key: value for key, value in row.items() if key != "oldest"}
        for status, row in json.loads(result.stdout).items()
    }
    assert counts == {
        "pending": {"total": 2, "under_1m": 1, "under_1h": 1, "under_1d": 0, "older": 0},
        "processing": {"total": 1, "under_1m": 1, "under_1h": 0, "under_1d": 0, "older": 0},
        "failed": {"total": 2, "under_1m": 0, "under_1h": 0, "under_1d": 1, "older": 1},
    }
    table = wabot("inbox").stdout.splitlines()
    assert table[0].split() == [
        "status",
        "total",
        "under_1m",
        "under_1h",
        "under_1d",
        "older",
        "oldest",
    ]
    assert table[1].split() == ["pending", "2", "1", "1", "0", "0", "10m"]
    assert table[3].split() == ["failed", "2", "0", "0", "1", "1", "2d"]


async def test_a_conversation_is_printed_as_its_transcript(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = await builder_with_channel(db_sessions)
    session_id = await stored_session(
        db_sessions, builder_id, tool_exchange("What time is it?", "It is noon.")
    )

    shown = wabot("conversation", "show", str(session_id))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == "Ada +316•••••678 (active, 4 items)"
    assert [line.split("  ", 1)[1].strip() for line in lines[1:]] == [
        "user: What time is it?",
        'tool: current_time({"timezone": "UTC"})',
        "tool: → Monday 12:00 UTC",
        "assistant: It is noon.",
    ]
    latest = json.loads(
        wabot("conversation", "show", str(session_id), "--limit", "1", "--json").stdout
    )
    assert latest["earlier_items"] is True
    assert [(item["role"], item["text"]) for item in latest["items"]] == [
        ("assistant", "It is noon.")
    ]
    missing = str(uuid.uuid4())
    unknown = wabot("conversation", "show", missing)
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        f"Error: no conversation with id {missing}",
    )


async def test_recent_conversations_are_listed_newest_first_with_numbers_masked(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = await builder_with_channel(db_sessions)
    older = await stored_session(
        db_sessions, builder_id, tool_exchange("Hi?", "Hello."), external_id="+31612345678"
    )
    newer = await stored_session(
        db_sessions,
        builder_id,
        tool_exchange("Open?", "Yes."),
        external_id="+447700900123",
        display_name=None,
    )
    async with db_sessions.begin() as db:
        await db.execute(
            update(AgentSessionRow)
            .where(AgentSessionRow.id == newer)
            .values(paused_at=datetime.now(UTC))
        )

    listed = wabot("conversation", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == [str(newer), str(older)]
    assert lines[0].split("  ")[1:3] == ["Test Bakery", "+447••••••123"]
    assert lines[0].endswith("  paused") and lines[1].endswith("  active")
    assert "Ada +316•••••678" in lines[1]
    assert "612345" not in listed.stdout and "7700900" not in listed.stdout

    rows = json.loads(wabot("conversation", "list", "--limit", "1", "--json").stdout)
    assert [(row["id"], row["builder"], row["user"], row["status"]) for row in rows] == [
        (str(newer), "Test Bakery", "+447••••••123", "paused")
    ]
    stored_at = datetime.fromisoformat(rows[0]["last_message_at"])
    assert abs(datetime.now(UTC) - stored_at) < timedelta(minutes=1)

    other = await builder_with_channel(db_sessions, address="whatsapp:+14155550111")
    assert wabot("conversation", "list", "--builder", str(other)).stdout == "no conversations\n"
    missing = str(uuid.uuid4())
    unknown = wabot("conversation", "list", "--builder", missing)
    assert (unknown.returncode, unknown.stderr) == (1, f"Error: no builder with id {missing}\n")
