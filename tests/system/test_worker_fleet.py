"""Scale beyond one machine: two worker processes consuming one queue share the
conversations, answer every message once and keep each conversation in order, even as a
conversation passes from one process to the other."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InboundMessage, SessionItem
from db.transcript import content_text
from tests.conftest import start_worker
from tests.factories import builder_with_channel, post_signed, twilio_form
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from tests.logs import json_lines
from tests.queries import all_answered, inbound_messages, kind, outbound_messages, turns
from tests.waiting import eventually

pytestmark = pytest.mark.slow

CONVERSATIONS = 20
MESSAGES_EACH = 5
BURST = 3  # sent back to back; the rest one at a time
MODEL_DELAY_SECONDS = 0.15  # so turns overlap across the processes
ANSWERING = re.compile(r"turn (\S+) of session \S+: answering")


def user_number(n: int) -> str:
    return f"whatsapp:+1777{n:07d}"


async def test_two_worker_processes_answer_each_message_once_and_in_order(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Callable[..., tuple[dict[str, str], str]],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
) -> None:
    env, receiver = private_queue(SENDER_TURNS_PER_MINUTE="0")
    await builder_with_channel(db_sessions)
    fake_openai.delay_seconds = MODEL_DELAY_SECONDS
    logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
    workers: list[subprocess.Popen[bytes]] = []
    try:
        for log in logs:
            workers.append(start_worker(env, log, concurrency=4))
        sent = await converse_all(receiver, fake_twilio)
        await settled(db_sessions, logs)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)

    inbox = await inbound_messages(db_sessions)
    assert len(inbox) == CONVERSATIONS * MESSAGES_EACH
    assert {row.status for row in inbox} == {"processed"}
    all_turns = {str(turn.id): turn for turn in await turns(db_sessions)}
    assert {(turn.status, turn.attempts) for turn in all_turns.values()} == {("replied", 1)}, (
        "a turn failed or was run more than once"
    )
    messages_of: dict[str, list[InboundMessage]] = defaultdict(list)
    for row in inbox:
        assert row.session_id == all_turns[str(row.turn_id)].session_id
        messages_of[str(row.turn_id)].append(row)

    # Each turn was run once, by one process, and both processes ran a fair share.
    runs = {log.name: ANSWERING.findall(log.read_text(errors="replace")) for log in logs}
    assert Counter(turn for found in runs.values() for turn in found) == Counter(
        dict.fromkeys(all_turns, 1)
    )
    assert all(len(found) >= 5 for found in runs.values()), {
        name: len(found) for name, found in runs.items()
    }
    process_of = {turn: name for name, found in runs.items() for turn in found}

    # One model call and one reply per turn: nothing generated or sent twice.
    assert len(fake_openai.requests) == len(all_turns)
    outbound = await outbound_messages(db_sessions)
    assert sorted(str(reply.turn_id) for reply in outbound) == sorted(all_turns)
    assert {(reply.part, reply.status) for reply in outbound} == {(0, "queued")}
    assert sorted(m["sid"] for m in fake_twilio.messages) == sorted(
        str(reply.provider_message_id) for reply in outbound
    )
    replies_to: dict[str, list[str]] = defaultdict(list)
    for delivered in fake_twilio.messages:
        replies_to[delivered["To"]].append(delivered["Body"])

    items: dict[str, list[SessionItem]] = defaultdict(list)
    async with db_sessions() as db:
        for item in await db.scalars(select(SessionItem).order_by(SessionItem.sequence)):
            items[str(item.session_id)].append(item)
    handed_over = 0
    for n, texts in sent.items():
        rows = [row for row in inbox if row.sender == user_number(n)]
        assert [row.text for row in rows] == texts  # arrival order is the order sent
        [session_id] = {str(row.session_id) for row in rows}
        turn_order = list(dict.fromkeys(str(row.turn_id) for row in rows))
        answers = [f"You said: {messages_of[turn][-1].text}" for turn in turn_order]
        # What the user saw: one answer per turn (the fake echoes its last message).
        assert replies_to[user_number(n)] == answers
        # What the agent remembers: each message once, in order, each answer right after
        # the messages it answers, with contiguous sequences.
        expected = []
        for turn, answer in zip(turn_order, answers, strict=True):
            expected += [("user", row.text) for row in messages_of[turn]]
            expected.append(("assistant", answer))
        stored = items[session_id]
        assert [(kind(i.item_data), content_text(i.item_data["content"])) for i in stored] == (
            expected
        )
        assert [item.sequence for item in stored] == list(range(len(stored)))
        handed_over += len({process_of[turn] for turn in turn_order}) > 1
    assert handed_over > 0, "no conversation moved between the processes"


async def converse_all(receiver: str, fake_twilio: FakeTwilio) -> dict[int, list[str]]:
    """All conversations at once, every message a signed Twilio webhook: a burst; once
    it is answered and after a pause, one more; then after a shorter pause (often while
    that one is being answered) the last. Returns the texts each conversation sent."""

    async def converse(client: httpx.AsyncClient, n: int) -> list[str]:
        rng = random.Random(n)
        texts: list[str] = []
        for index in range(MESSAGES_EACH):
            if index == BURST:
                await read_answer(n, texts[-1])
                await asyncio.sleep(rng.uniform(0.1, 0.5))
            elif index > BURST:
                await asyncio.sleep(rng.uniform(0, 0.5))
            text = f"c{n}m{index}"
            form = twilio_form(text, sender=user_number(n))
            response = await post_signed(client, f"{receiver}/webhooks/twilio", form)
            assert response.status_code == 200, response.text
            texts.append(text)
        return texts

    async def read_answer(n: int, text: str) -> None:
        """Wait, as the user would, for the reply to `text` (the fake model echoes the
        last message of a turn)."""

        def replies() -> list[str]:
            return [m["Body"] for m in list(fake_twilio.messages) if m["To"] == user_number(n)]

        async def answered() -> bool:
            return f"You said: {text}" in replies()

        try:
            await eventually(answered, within=30, what=f"the answer to {text}")
        except AssertionError as error:
            raise AssertionError(f"{error}; conversation {n} got {replies()}") from error

    async with httpx.AsyncClient(timeout=30) as client, asyncio.TaskGroup() as group:
        conversations = [group.create_task(converse(client, n)) for n in range(CONVERSATIONS)]
    return {n: conversation.result() for n, conversation in enumerate(conversations)}


async def settled(sessions: async_sessionmaker[AsyncSession], logs: list[Path]) -> None:
    """Wait until every message is closed and no lease held, then until every task has
    finished: tasks that found their conversation busy run again later, and one that
    answered again then would otherwise go unseen."""

    def task_lines() -> dict[str, list[str]]:
        """What Celery logged about each task (one id across its retries), in time order."""
        lines: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for log in logs:
            for line in json_lines(log):
                if line["logger"].startswith("celery.") and "task_id" in line:
                    lines[line["task_id"]].append((line["time"], f"{line['message']} ({log.name})"))
        return {
            task: [line for _, line in sorted(found, key=lambda found: found[0])]
            for task, found in lines.items()
        }

    def unfinished() -> list[list[str]]:
        return [found for found in task_lines().values() if "succeeded" not in found[-1]]

    async def tasks_finished() -> bool:
        return len(task_lines()) >= CONVERSATIONS * MESSAGES_EACH and not unfinished()

    await eventually(partial(all_answered, sessions), within=60, what="every message answered")
    try:
        await eventually(tasks_finished, within=30, what="every task finished")
    except AssertionError as error:
        raise AssertionError(f"{error}; unfinished: {unfinished()}") from error
