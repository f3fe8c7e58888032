"""Replies on numbers with their own provider credentials go out under those credentials;
credentials CREDENTIALS_KEY cannot open fail the turn, retried, naming the key, and
never crash the worker. In-process, through the functions the Celery task calls."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import set_channel_credentials
from db.core.credentials import CredentialsCipher, MetaCredentials, TwilioCredentials, new_key
from db.core.settings import Settings
from db.models import AgentSessionRow
from tests.factories import (
    BOT_NUMBER,
    CREDENTIALS_KEY,
    META_PHONE_NUMBER_ID,
    builder_token,
    builder_with_channel,
    channel_at,
)
from tests.fakes.meta import OTHER_ACCESS_TOKEN, FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import (
    ACCOUNT_SID,
    OTHER_ACCOUNT_SID,
    OTHER_AUTH_TOKEN,
    FakeTwilio,
)
from tests.queries import all_items, turns
from tests.worker.conversation.test_turns import arrive
from worker.channels.pool import UnreadableChannelCredentials
from worker.conversation.human_reply import reply_as_human
from worker.conversation.inbound import RetryLater, process_inbound
from worker.process.runtime import Runtime, create_runtime

OWN_TWILIO = TwilioCredentials(OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN)
OTHER_NUMBER = "whatsapp:+14155550100"


async def test_replies_go_out_under_each_number_s_own_account(
    db_sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    fake_twilio: FakeTwilio,
    fake_graph: FakeGraphAPI,
) -> None:
    await builder_with_channel(db_sessions, credentials=OWN_TWILIO)
    await builder_with_channel(db_sessions, address=OTHER_NUMBER)
    await builder_with_channel(
        db_sessions,
        provider="meta",
        address=META_PHONE_NUMBER_ID,
        credentials=MetaCredentials(access_token=OTHER_ACCESS_TOKEN),
    )
    for address, provider in ((BOT_NUMBER, "twilio"), (OTHER_NUMBER, "twilio")):
        channel = await channel_at(db_sessions, address, provider)
        await process_inbound(await arrive(db_sessions, channel, "Hi"), runtime=runtime)
    meta = await channel_at(db_sessions, META_PHONE_NUMBER_ID, "meta")
    await process_inbound(await arrive(db_sessions, meta, "Hoi"), runtime=runtime)

    assert [(m["From"], m["account_sid"]) for m in fake_twilio.messages] == [
        (BOT_NUMBER, OTHER_ACCOUNT_SID),
        (OTHER_NUMBER, ACCOUNT_SID),
    ]
    [meta_reply] = fake_graph.messages
    assert (meta_reply["text"]["body"], meta_reply["access_token"]) == (
        "You said: Hoi",
        OTHER_ACCESS_TOKEN,
    )


async def test_numbers_with_the_same_credentials_share_one_client(
    db_sessions: async_sessionmaker[AsyncSession], runtime: Runtime
) -> None:
    await builder_with_channel(db_sessions, credentials=OWN_TWILIO)
    await builder_with_channel(db_sessions, address=OTHER_NUMBER, credentials=OWN_TWILIO)
    first, second = [await channel_at(db_sessions, a) for a in (BOT_NUMBER, OTHER_NUMBER)]
    assert first.credentials != second.credentials  # each number's token is its own
    assert runtime.channel(first) is runtime.channel(second)
    assert runtime.channel(first) is not runtime.channels.twilio


async def test_credentials_the_key_cannot_open_are_retried_until_the_key_is_fixed(
    db_sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    runtime: Runtime,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await builder_with_channel(db_sessions)
    lost_key = new_key()
    async with db_sessions.begin() as db:
        foreign = CredentialsCipher(lost_key).encrypt(OWN_TWILIO)
        await set_channel_credentials("twilio", BOT_NUMBER, foreign, db=db)
    channel = await channel_at(db_sessions, BOT_NUMBER)
    inbound_id = await arrive(db_sessions, channel, "Hello")

    with caplog.at_level(logging.ERROR, logger="worker.channels.pool"):
        for _ in range(2):
            with pytest.raises(RetryLater, match="cannot be decrypted with CREDENTIALS_KEY"):
                await process_inbound(inbound_id, runtime=runtime)
    [turn] = await turns(db_sessions)
    assert turn.status == "running" and "CREDENTIALS_KEY" in (turn.error or "")
    assert fake_openai.requests == [] and fake_twilio.messages == []
    [logged] = [record.getMessage() for record in caplog.records]
    assert str(channel.id) in logged and "CREDENTIALS_KEY" in logged

    fixed = create_runtime(
        settings.model_copy(update={"credentials_key": SecretStr(f"{CREDENTIALS_KEY},{lost_key}")})
    )
    try:
        await process_inbound(inbound_id, runtime=fixed)
    finally:
        await fixed.aclose()
    [turn] = await turns(db_sessions)
    assert turn.status == "replied"
    assert [(m["Body"], m["account_sid"]) for m in fake_twilio.messages] == [
        ("You said: Hello", OTHER_ACCOUNT_SID)
    ]


async def test_a_human_reply_on_a_number_the_key_cannot_open_is_refused_whole(
    db_sessions: async_sessionmaker[AsyncSession],
    runtime: Runtime,
    receiver: str,
    fake_twilio: FakeTwilio,
) -> None:
    builder_id = await builder_with_channel(db_sessions, credentials=OWN_TWILIO)
    channel = await channel_at(db_sessions, BOT_NUMBER)
    await process_inbound(await arrive(db_sessions, channel, "Hi"), runtime=runtime)
    async with db_sessions.begin() as db:
        foreign = CredentialsCipher(new_key()).encrypt(OWN_TWILIO)
        await set_channel_credentials("twilio", BOT_NUMBER, foreign, db=db)
        session_id: uuid.UUID | None = await db.scalar(select(AgentSessionRow.id))
    assert session_id is not None
    before = await all_items(db_sessions)

    with pytest.raises(UnreadableChannelCredentials, match="CREDENTIALS_KEY"):
        await reply_as_human(session_id, "Sam here.", runtime=runtime)
    token = await builder_token(db_sessions, builder_id)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.post(
            f"{receiver}/sessions/{session_id}/reply", data={"text": "Sam here."}
        )
    assert response.status_code == 303
    notice = httpx.URL(response.headers["location"]).params["notice"]
    assert notice.startswith("Reply not sent, nor stored: ") and "CREDENTIALS_KEY" in notice
    assert await all_items(db_sessions) == before
    assert len(fake_twilio.messages) == 1
