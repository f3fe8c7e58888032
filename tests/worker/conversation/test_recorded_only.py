"""Messages kept in the conversation but not answered (reactions, deletes, edits,
call-permission replies, system messages): driven in-process through the task's plain
functions on real Postgres, the fake Responses API and the fake Graph API."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import update_builder
from db.inbox import ReceivedMessage, record_inbound
from db.models import AgentSessionRow, Channel
from tests.factories import META_PHONE_NUMBER_ID, META_USER_WA_ID, arrive
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.queries import all_answered, all_items, inbound_messages, turns
from worker.conversation.inbound import process_inbound
from worker.process.runtime import Runtime
from worker.process.turn_metrics import TURNS

REACTION = "[reacted 👍 to an earlier message]"


def recorded_turns() -> float:
    return TURNS.labels("whatsapp", "recorded")._value.get()


async def test_a_turn_of_only_reactions_deletes_and_edits_runs_no_agent_and_sends_nothing(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    before = recorded_turns()
    arrived = [
        await arrive(db_sessions, meta_channel, REACTION, kind="reaction"),
        await arrive(db_sessions, meta_channel, "[deleted a message]", kind="revoke"),
        await arrive(db_sessions, meta_channel, "[edited a message: at 8]", kind="edit"),
        await arrive(db_sessions, meta_channel, "[declined calls]", kind="call_permission"),
    ]
    await process_inbound(arrived[0], runtime=runtime)

    assert (fake_openai.requests, fake_graph.messages, fake_graph.typing) == ([], [], [])
    assert await all_items(db_sessions) == [
        {"role": "user", "content": REACTION},
        {"role": "user", "content": "[deleted a message]"},
        {"role": "user", "content": "[edited a message: at 8]"},
        {"role": "user", "content": "[declined calls]"},
    ]
    assert [m.status for m in await inbound_messages(db_sessions)] == ["processed"] * 4
    assert [t.status for t in await turns(db_sessions)] == ["replied"]
    assert await all_answered(db_sessions)  # nothing pending, no lease held
    assert recorded_turns() == before + 1
    for inbound_id in arrived:  # their own tasks, run later, find nothing to do
        await process_inbound(inbound_id, runtime=runtime)
    assert fake_openai.requests == [] and len(await all_items(db_sessions)) == 4


async def test_the_next_answered_turn_reads_them_as_context(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    await process_inbound(
        await arrive(db_sessions, meta_channel, "[deleted a message]", kind="revoke"),
        runtime=runtime,
    )
    await process_inbound(await arrive(db_sessions, meta_channel, "Hi"), runtime=runtime)

    [request] = fake_openai.requests
    users = [item["content"] for item in request["input"] if item.get("role") == "user"]
    assert users == ["[deleted a message]", "Hi"]
    assert [m["text"]["body"] for m in fake_graph.messages] == ["You said: Hi"]


async def test_mixed_with_a_question_they_are_part_of_its_input(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    await arrive(db_sessions, meta_channel, REACTION, kind="reaction")
    await process_inbound(await arrive(db_sessions, meta_channel, "Open?"), runtime=runtime)

    [request] = fake_openai.requests
    users = [item["content"] for item in request["input"] if item.get("role") == "user"]
    assert users == [REACTION, "Open?"]
    assert len(fake_graph.messages) == 1


async def test_a_builder_can_have_reactions_answered(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    async with db_sessions.begin() as db:
        await update_builder(meta_channel.builder_id, {"reactions_as_input": True}, db=db)
    await process_inbound(
        await arrive(db_sessions, meta_channel, REACTION, kind="reaction"), runtime=runtime
    )
    assert [m["text"]["body"] for m in fake_graph.messages] == [f"You said: {REACTION}"]


async def test_a_user_who_changed_number_continues_the_same_conversation(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    """Meta's `user_changed_number` comes from the old number; the next message from the
    new one lands in the session the old number had, and the reply goes to the new one."""
    new_number = "16505559999"
    system = {"type": "user_changed_number", "wa_id": new_number, "body": "…"}
    messages = [
        meta_message("Hi"),
        meta_message(
            f"[changed their WhatsApp number to +{new_number}]",
            kind="system",
            payload={"message": {"type": "system", "system": system}, "contact": {}},
        ),
        meta_message("Still there?", sender=new_number),
    ]
    for received in messages:
        async with db_sessions.begin() as db:
            [recorded] = await record_inbound([received], db=db)
        assert recorded.inbound_id is not None
        await process_inbound(recorded.inbound_id, runtime=runtime)

    async with db_sessions() as db:
        [session] = await db.scalars(select(AgentSessionRow))
    assert (session.external_id, session.wa_id) == (f"+{new_number}", new_number)
    assert [m["to"] for m in fake_graph.messages] == [META_USER_WA_ID, new_number]
    users = [i["content"] for i in fake_openai.requests[-1]["input"] if i.get("role") == "user"]
    assert users == ["Hi", f"[changed their WhatsApp number to +{new_number}]", "Still there?"]
    assert await all_answered(db_sessions)


def meta_message(
    text: str,
    *,
    kind: str = "text",
    sender: str = META_USER_WA_ID,
    payload: dict[str, Any] | None = None,
) -> ReceivedMessage:
    return ReceivedMessage(
        provider="meta",
        provider_message_id=f"wamid.{uuid.uuid4().hex}",
        recipient=META_PHONE_NUMBER_ID,
        sender=sender,
        sender_wa_id=sender,
        sender_user_id=None,
        profile_name="Ada",
        kind=kind,
        text=text,
        media=[],
        payload=payload or {},
    )
