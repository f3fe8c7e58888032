"""A reply part that may have reached the user (its send got no answer, or its worker
died) is looked up at the provider before the turn's retry sends it: Twilio's Messages
list, or the status Meta posts back with our outbound id. Driven in-process against
real Postgres, the real receiver and the fake providers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Channel
from tests.factories import arrive
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.twilio import FakeTwilio
from tests.queries import outbound_messages, turns
from worker.conversation.inbound import RetryLater, process_inbound
from worker.process.runtime import Runtime


async def test_a_twilio_send_that_got_no_answer_is_found_in_twilio_s_list_not_sent_again(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_twilio: FakeTwilio,
) -> None:
    hasty = runtime_with(twilio_timeout_seconds=0.5)
    fake_twilio.hold_after_accept_seconds = 2  # Twilio takes it, the answer comes too late
    inbound_id = await arrive(db_sessions, channel, "Hello")
    with pytest.raises(RetryLater):
        await process_inbound(inbound_id, runtime=hasty)
    fake_twilio.hold_after_accept_seconds = 0

    await process_inbound(inbound_id, runtime=hasty)

    [sent] = fake_twilio.messages
    assert sent["Body"] == "You said: Hello"
    [reply] = await outbound_messages(db_sessions)
    assert (reply.status, reply.provider_message_id) == ("sent", sent["sid"])
    [turn] = await turns(db_sessions)
    assert turn.status == "replied"


async def test_a_part_twilio_never_took_is_sent_even_after_the_same_text_earlier(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_twilio: FakeTwilio,
) -> None:
    hasty = runtime_with(twilio_timeout_seconds=0.5)
    await process_inbound(await arrive(db_sessions, channel, "Hello"), runtime=hasty)
    fake_twilio.delay_seconds = 2  # no answer, and the request never reaches Twilio
    again = await arrive(db_sessions, channel, "Hello")
    with pytest.raises(RetryLater):
        await process_inbound(again, runtime=hasty)
    fake_twilio.delay_seconds = 0

    await process_inbound(again, runtime=hasty)

    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hello"] * 2
    first, second = await outbound_messages(db_sessions)
    assert [first.provider_message_id, second.provider_message_id] == [
        m["sid"] for m in fake_twilio.messages
    ]


async def test_a_part_is_not_sent_while_twilio_cannot_say_whether_it_took_it(
    db_sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_twilio: FakeTwilio,
) -> None:
    hasty = runtime_with(twilio_timeout_seconds=0.5)
    fake_twilio.hold_after_accept_seconds = 2
    inbound_id = await arrive(db_sessions, channel, "Hello")
    with pytest.raises(RetryLater):
        await process_inbound(inbound_id, runtime=hasty)
    fake_twilio.hold_after_accept_seconds = 0
    fake_twilio.list_failures.append((503, 20503))

    with pytest.raises(RetryLater, match="could not ask whether reply part 1 was sent"):
        await process_inbound(inbound_id, runtime=hasty)
    await process_inbound(inbound_id, runtime=hasty)

    assert [m["Body"] for m in fake_twilio.messages] == ["You said: Hello"]
    [turn] = await turns(db_sessions)
    assert turn.status == "replied"


async def test_a_meta_send_that_got_no_answer_is_found_by_the_status_meta_posts(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_graph: FakeGraphAPI,
    receiver: str,
) -> None:
    patient = runtime_with(meta_timeout_seconds=0.5, meta_status_wait_seconds=10)
    fake_graph.hold_after_accept_seconds = 2
    fake_graph.status_webhooks_to = receiver
    fake_graph.status_delay_seconds = 3  # it arrives while the retry waits for it
    inbound_id = await arrive(db_sessions, meta_channel, "Hello")
    with pytest.raises(RetryLater):
        await process_inbound(inbound_id, runtime=patient)

    await process_inbound(inbound_id, runtime=patient)

    [sent] = fake_graph.messages
    assert sent["text"]["body"] == "You said: Hello"
    [reply] = await outbound_messages(db_sessions)
    assert reply.provider_message_id == sent["id"]
    assert sent["biz_opaque_callback_data"] == str(reply.id)
    [turn] = await turns(db_sessions)
    assert turn.status == "replied"


async def test_a_meta_status_that_never_comes_costs_one_resend_after_the_wait(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_graph: FakeGraphAPI,
) -> None:
    hasty = runtime_with(meta_timeout_seconds=0.5, meta_status_wait_seconds=0.5)
    fake_graph.hold_after_accept_seconds = 2  # and no status webhook ever comes
    inbound_id = await arrive(db_sessions, meta_channel, "Hello")
    with pytest.raises(RetryLater):
        await process_inbound(inbound_id, runtime=hasty)
    fake_graph.hold_after_accept_seconds = 0

    await process_inbound(inbound_id, runtime=hasty)

    assert [m["text"]["body"] for m in fake_graph.messages] == ["You said: Hello"] * 2
    [reply] = await outbound_messages(db_sessions)
    assert reply.provider_message_id == fake_graph.messages[-1]["id"]
