"""Webhooks of numbers with their own provider credentials: verified with that number's
own auth token or app secret only, never with another's; a notification mixing numbers
of different apps is refused; credentials the key cannot open verify nothing.

Each test gets a receiver of its own, whose copy of the secrets its first webhook loads
(a copy loaded less than a second before a number was added does not know it yet)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel, set_channel_credentials
from db.core.credentials import CredentialsCipher, MetaCredentials, TwilioCredentials, new_key
from db.models import InboundMessage, OutboundMessage
from tests.factories import (
    BOT_NUMBER,
    CREDENTIALS_KEY,
    META_PHONE_NUMBER_ID,
    builder_with_channel,
    fixture_form,
    meta_notification,
    meta_text_message,
    post_meta,
    post_signed,
    twilio_form,
)
from tests.fakes.meta import APP_SECRET, OTHER_APP_SECRET
from tests.fakes.twilio import AUTH_TOKEN, OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN
from tests.queries import inbound_texts
from tests.webhooks.providers.test_twilio_status import sent_reply

OWN_TWILIO = TwilioCredentials(OTHER_ACCOUNT_SID, OTHER_AUTH_TOKEN)
OWN_APP = MetaCredentials(app_secret=OTHER_APP_SECRET)
GLOBAL_NUMBER = "whatsapp:+14155550100"
OTHER_PHONE_NUMBER_ID = "106540352242999"


@pytest.fixture
def receiver(make_receiver: Callable[..., str]) -> str:
    return make_receiver()


async def reply_status(sessions: async_sessionmaker[AsyncSession]) -> str | None:
    async with sessions() as db:
        return await db.scalar(select(OutboundMessage.status))


async def test_a_twilio_number_with_its_own_account_is_verified_with_its_token_only(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    await builder_with_channel(db_sessions, credentials=OWN_TWILIO)
    await builder_with_channel(db_sessions, address=GLOBAL_NUMBER)
    url = f"{receiver}/webhooks/twilio"
    async with httpx.AsyncClient() as client:
        own = await post_signed(client, url, twilio_form("own"), token=OTHER_AUTH_TOKEN)
        global_ = await post_signed(client, url, twilio_form("global"), token=AUTH_TOKEN)
        other = await post_signed(
            client, url, twilio_form("other", to=GLOBAL_NUMBER), token=AUTH_TOKEN
        )
        stolen = await post_signed(
            client, url, twilio_form("stolen", to=GLOBAL_NUMBER), token=OTHER_AUTH_TOKEN
        )
    assert [r.status_code for r in (own, global_, other, stolen)] == [200, 403, 200, 403]
    assert "invalid X-Twilio-Signature" in global_.text
    assert await inbound_texts(db_sessions) == ["own", "other"]


async def test_a_status_callback_is_verified_with_the_token_of_the_number_it_came_from(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    form = fixture_form("status_delivered.txt")
    await builder_with_channel(db_sessions, address=form["From"], credentials=OWN_TWILIO)
    await sent_reply(db_sessions, form["MessageSid"])
    url = f"{receiver}/webhooks/twilio/status"
    async with httpx.AsyncClient() as client:
        refused = await post_signed(client, url, form, token=AUTH_TOKEN)
        assert refused.status_code == 403 and "invalid X-Twilio-Signature" in refused.text
        assert await reply_status(db_sessions) == "queued"
        accepted = await post_signed(client, url, form, token=OTHER_AUTH_TOKEN)
    assert accepted.status_code == 200
    assert await reply_status(db_sessions) == "delivered"


async def replies_by_id(
    sessions: async_sessionmaker[AsyncSession],
) -> dict[str | None, tuple[str, str | None]]:
    """Each sent reply's (status, error), by its provider message id."""
    async with sessions() as db:
        rows = await db.execute(
            select(
                OutboundMessage.provider_message_id, OutboundMessage.status, OutboundMessage.error
            )
        )
        return {message_id: (status, error) for message_id, status, error in rows}


async def test_a_status_callback_moves_only_replies_of_the_number_whose_token_signed_it(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    """Builder A holds its own auth token: it can report on A's replies, never on B's."""
    await builder_with_channel(db_sessions, credentials=OWN_TWILIO)
    await sent_reply(db_sessions, "SM_OF_A", address=BOT_NUMBER)
    await sent_reply(db_sessions, "SM_OF_B", address=GLOBAL_NUMBER)
    failed = {
        **fixture_form("status_delivered.txt"),
        "From": BOT_NUMBER,
        "MessageStatus": "failed",
        "ErrorCode": "63016",
        "ErrorMessage": "written by A",
    }
    url = f"{receiver}/webhooks/twilio/status"
    async with httpx.AsyncClient() as client:
        responses = [
            await post_signed(client, url, {**failed, "MessageSid": sid}, token=OTHER_AUTH_TOKEN)
            for sid in ("SM_OF_B", "SM_OF_A")
        ]
    assert [r.status_code for r in responses] == [200, 200]
    assert await replies_by_id(db_sessions) == {
        "SM_OF_A": ("failed", "Twilio error 63016: written by A"),
        "SM_OF_B": ("queued", None),
    }


async def test_meta_statuses_move_only_replies_of_the_number_they_came_under(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    """Builder A's app secret signs statuses under A's phone number id: B's reply stays."""
    await builder_with_channel(
        db_sessions, provider="meta", address=META_PHONE_NUMBER_ID, credentials=OWN_APP
    )
    await sent_reply(db_sessions, "wamid.OF_A", provider="meta", address=META_PHONE_NUMBER_ID)
    await sent_reply(db_sessions, "wamid.OF_B", provider="meta", address=OTHER_PHONE_NUMBER_ID)
    failed = [
        {
            "id": wamid,
            "status": "failed",
            "timestamp": "1",
            "recipient_id": "1",
            "errors": [{"code": 131026, "title": "written by A"}],
        }
        for wamid in ("wamid.OF_B", "wamid.OF_A")
    ]
    async with httpx.AsyncClient() as client:
        response = await post_meta(
            client,
            f"{receiver}/webhooks/meta",
            meta_notification(statuses=failed, phone_number_id=META_PHONE_NUMBER_ID),
            secret=OTHER_APP_SECRET,
        )
    assert response.status_code == 200
    assert await replies_by_id(db_sessions) == {
        "wamid.OF_A": ("failed", "Meta error 131026: written by A"),
        "wamid.OF_B": ("queued", None),
    }


async def routed(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, str, bool]]:
    """(text, recipient, whether a channel took it) of each message recorded."""
    async with sessions() as db:
        rows = await db.execute(
            select(
                InboundMessage.text, InboundMessage.recipient, InboundMessage.channel_id
            ).order_by(InboundMessage.id)
        )
        return [(text, recipient, channel is not None) for text, recipient, channel in rows]


@pytest.mark.parametrize(
    "to", ["whatsapp:+1415523\x008886", " whatsapp:+14155238886\t", "+14155238886"]
)
async def test_a_twilio_number_spelled_otherwise_is_still_verified_with_its_own_token(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str, to: str
) -> None:
    """The address is normalised before its credential is chosen: the global token never
    verifies a message that is then routed to a number with a token of its own."""
    await builder_with_channel(db_sessions, credentials=OWN_TWILIO)
    url = f"{receiver}/webhooks/twilio"
    async with httpx.AsyncClient() as client:
        global_ = await post_signed(client, url, twilio_form("global", to=to), token=AUTH_TOKEN)
        own = await post_signed(client, url, twilio_form("own", to=to), token=OTHER_AUTH_TOKEN)
    assert [global_.status_code, own.status_code] == [403, 200]
    assert "invalid X-Twilio-Signature" in global_.text
    assert await routed(db_sessions) == [("own", BOT_NUMBER, True)]


async def test_a_meta_phone_number_id_spelled_otherwise_is_still_its_apps(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    await builder_with_channel(
        db_sessions, provider="meta", address=META_PHONE_NUMBER_ID, credentials=OWN_APP
    )
    spelled = f" {META_PHONE_NUMBER_ID}\n"
    url = f"{receiver}/webhooks/meta"
    async with httpx.AsyncClient() as client:
        responses = [
            await post_meta(
                client,
                url,
                meta_notification([meta_text_message(text)], phone_number_id=spelled),
                secret=secret,
            )
            for text, secret in (("global", APP_SECRET), ("own", OTHER_APP_SECRET))
        ]
    assert [r.status_code for r in responses] == [403, 200]
    assert await routed(db_sessions) == [("own", META_PHONE_NUMBER_ID, True)]


async def test_a_number_whose_new_token_was_just_stored_is_verified_with_it(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    """The receiver's copy of the secrets is reloaded when it cannot verify a webhook."""
    await builder_with_channel(db_sessions)
    url = f"{receiver}/webhooks/twilio"
    async with httpx.AsyncClient() as client:
        assert (await post_signed(client, url, twilio_form("before"))).status_code == 200
        async with db_sessions.begin() as db:
            stored = CredentialsCipher(CREDENTIALS_KEY).encrypt(OWN_TWILIO)
            await set_channel_credentials("twilio", BOT_NUMBER, stored, db=db)
        after = await post_signed(client, url, twilio_form("after"), token=OTHER_AUTH_TOKEN)
    assert after.status_code == 200
    assert await inbound_texts(db_sessions) == ["before", "after"]


async def test_credentials_the_key_cannot_open_verify_nothing_and_are_logged_once(
    db_sessions: async_sessionmaker[AsyncSession],
    receiver: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await builder_with_channel(db_sessions)
    async with db_sessions.begin() as db:
        foreign = CredentialsCipher(new_key()).encrypt(OWN_TWILIO)
        await set_channel_credentials("twilio", BOT_NUMBER, foreign, db=db)
        channel = await find_channel("twilio", BOT_NUMBER, db=db)
        assert channel is not None
    url = f"{receiver}/webhooks/twilio"
    with caplog.at_level(logging.ERROR, logger="webhooks.providers.channel_secrets"):
        async with httpx.AsyncClient() as client:
            responses = [
                await post_signed(client, url, twilio_form(text), token=token)
                for text, token in (("own", OTHER_AUTH_TOKEN), ("global", AUTH_TOKEN))
            ]
    assert [r.status_code for r in responses] == [403, 403]
    assert all("cannot be decrypted (CREDENTIALS_KEY)" in r.text for r in responses)
    assert await inbound_texts(db_sessions) == []
    [logged] = [r.getMessage() for r in caplog.records if str(channel.id) in r.getMessage()]
    assert "CREDENTIALS_KEY" in logged and OTHER_AUTH_TOKEN not in logged


async def test_a_meta_number_with_its_own_app_is_verified_with_its_secret_only(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    await builder_with_channel(
        db_sessions, provider="meta", address=META_PHONE_NUMBER_ID, credentials=OWN_APP
    )
    await sent_reply(db_sessions, "wamid.OUT1", provider="meta", address=META_PHONE_NUMBER_ID)
    url = f"{receiver}/webhooks/meta"
    message = meta_notification([meta_text_message("own", wamid="wamid.IN1")])
    status = meta_notification(
        statuses=[{"id": "wamid.OUT1", "status": "read", "timestamp": "1", "recipient_id": "1"}]
    )
    async with httpx.AsyncClient() as client:
        refused = [await post_meta(client, url, body) for body in (message, status)]
        own = OTHER_APP_SECRET
        accepted = [await post_meta(client, url, body, secret=own) for body in (message, status)]
    assert [r.status_code for r in refused] == [403, 403]
    assert all(
        f"phone number id {META_PHONE_NUMBER_ID} is not verified by the app secret" in r.text
        for r in refused
    )
    assert [r.status_code for r in accepted] == [200, 200]
    assert await inbound_texts(db_sessions) == ["own"]
    assert await reply_status(db_sessions) == "read"


@pytest.mark.parametrize("secret", [APP_SECRET, OTHER_APP_SECRET])
async def test_a_notification_mixing_numbers_of_different_apps_is_refused(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str, secret: str
) -> None:
    await builder_with_channel(
        db_sessions, provider="meta", address=META_PHONE_NUMBER_ID, credentials=OWN_APP
    )
    await builder_with_channel(db_sessions, provider="meta", address=OTHER_PHONE_NUMBER_ID)
    entries = [
        json.loads(meta_notification([meta_text_message(text)], phone_number_id=number))["entry"]
        for text, number in (("own", META_PHONE_NUMBER_ID), ("global", OTHER_PHONE_NUMBER_ID))
    ]
    mixed = {"object": "whatsapp_business_account", "entry": entries[0] + entries[1]}
    async with httpx.AsyncClient() as client:
        response = await post_meta(
            client, f"{receiver}/webhooks/meta", json.dumps(mixed).encode(), secret=secret
        )
    assert response.status_code == 403
    assert "is not verified by the app secret that signed this notification" in response.text
    assert await inbound_texts(db_sessions) == []


async def test_a_number_with_only_its_own_access_token_is_verified_with_the_global_secret(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    await builder_with_channel(
        db_sessions,
        provider="meta",
        address=META_PHONE_NUMBER_ID,
        credentials=MetaCredentials(access_token="its-own-access-token"),
    )
    unknown = meta_notification([meta_text_message("unknown")], phone_number_id="999999999")
    async with httpx.AsyncClient() as client:
        url = f"{receiver}/webhooks/meta"
        own_number = await post_meta(client, url, meta_notification([meta_text_message("hi")]))
        global_unknown = await post_meta(client, url, unknown)
        own_unknown = await post_meta(client, url, unknown, secret=OTHER_APP_SECRET)
    assert [r.status_code for r in (own_number, global_unknown, own_unknown)] == [200, 200, 403]
    assert await inbound_texts(db_sessions) == ["hi", "unknown"]
