"""`GET/POST /webhooks/meta`: the subscription handshake, signed notifications recorded
once, statuses applied, and nothing a sender can post turns into a 5xx."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import OutboundMessage, Turn
from db.outbox import record_reply
from db.sessions import get_or_create_session
from tests.factories import (
    META_PHONE_NUMBER_ID,
    builder_with_channel,
    channel_at,
    meta_fixture,
    meta_notification,
    meta_signature,
    meta_text_message,
    post_meta,
)
from tests.fakes.meta import VERIFY_TOKEN
from tests.queries import inbound_messages
from tests.webhooks.providers.test_twilio_status import sent_reply


async def test_the_subscription_handshake_echoes_the_challenge(receiver: str) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    async with httpx.AsyncClient() as client:
        accepted = await client.get(f"{receiver}/webhooks/meta", params=params)
        wrong = await client.get(
            f"{receiver}/webhooks/meta", params={**params, "hub.verify_token": "guess"}
        )
        not_subscribe = await client.get(
            f"{receiver}/webhooks/meta", params={**params, "hub.mode": "unsubscribe"}
        )
    assert (accepted.status_code, accepted.text) == (200, "1158201444")
    assert accepted.headers["content-type"].startswith("text/plain")
    assert wrong.status_code == 403 and "verify_token" in wrong.text
    assert not_subscribe.status_code == 400


@pytest.mark.parametrize(
    ("fixture", "phone_number_id", "expected"),
    [
        (
            "text_message.json",
            "106540352242922",
            {
                "kind": "text",
                "text": "Does it come in another color?",
                "sender": "16505551234",
                "sender_wa_id": "16505551234",
                "sender_user_id": None,
                "profile_name": "Sheena Nelson",
            },
        ),
        (
            "image_message.json",
            "1122334455667",
            {
                "kind": "image",
                "text": "",
                "sender": "972987654321",
                "sender_wa_id": "972987654321",
                "sender_user_id": "US.13491208655302741918",
                "profile_name": "Test Name",
            },
        ),
        (
            "interactive_button_reply.json",
            "1122334455667",
            {
                "kind": "interactive",
                "text": "title",
                "sender": "972987654321",
                "sender_wa_id": "972987654321",
                "sender_user_id": "US.13491208655302741918",
                "profile_name": "Test Name",
            },
        ),
    ],
)
async def test_documented_notifications_become_inbox_rows(
    db_sessions: async_sessionmaker[AsyncSession],
    receiver: str,
    fixture: str,
    phone_number_id: str,
    expected: dict[str, Any],
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address=phone_number_id)
    body = meta_fixture(fixture)
    async with httpx.AsyncClient() as client:
        response = await post_meta(client, f"{receiver}/webhooks/meta", body)
    assert response.status_code == 200
    [row] = await inbound_messages(db_sessions)
    message = json.loads(body)["entry"][0]["changes"][0]["value"]["messages"][0]
    assert (row.provider, row.provider_message_id, row.recipient, row.status) == (
        "meta",
        message["id"],
        phone_number_id,
        "pending",
    )
    assert {key: getattr(row, key) for key in expected} == expected
    assert row.payload["message"] == message


@pytest.mark.parametrize(
    ("fixture", "status", "error"),
    [
        ("status_delivered.json", "delivered", None),
        (
            "status_failed.json",
            "failed",
            "Meta error 130472: User's number is part of an experiment",
        ),
    ],
)
async def test_documented_statuses_update_the_reply(
    db_sessions: async_sessionmaker[AsyncSession],
    receiver: str,
    fixture: str,
    status: str,
    error: str | None,
) -> None:
    body = meta_fixture(fixture)
    value = json.loads(body)["entry"][0]["changes"][0]["value"]
    await sent_reply(
        db_sessions,
        value["statuses"][0]["id"],
        provider="meta",
        address=value["metadata"]["phone_number_id"],
    )
    async with httpx.AsyncClient() as client:
        response = await post_meta(client, f"{receiver}/webhooks/meta", body)
    assert response.status_code == 200
    async with db_sessions() as db:
        reply = await db.scalar(select(OutboundMessage))
    assert reply is not None and (reply.status, reply.error) == (status, error)


async def test_statuses_only_move_forward(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    await sent_reply(db_sessions, "wamid.OUT1", provider="meta", address=META_PHONE_NUMBER_ID)
    seen = []
    async with httpx.AsyncClient() as client:
        for status in ("sent", "delivered", "read", "sent", "delivered"):
            update = {"id": "wamid.OUT1", "status": status, "timestamp": "1", "recipient_id": "1"}
            body = meta_notification(statuses=[update])
            assert (await post_meta(client, f"{receiver}/webhooks/meta", body)).status_code == 200
            async with db_sessions() as db:
                seen.append(await db.scalar(select(OutboundMessage.status)))
    assert seen == ["sent", "delivered", "read", "read", "read"]


async def reply_being_sent(
    sessions: async_sessionmaker[AsyncSession],
    parts: list[str],
    *,
    phone_number_id: str = META_PHONE_NUMBER_ID,
) -> list[OutboundMessage]:
    """A reply from the Meta number `phone_number_id` as a worker leaves it when it dies
    sending its first part."""
    await builder_with_channel(sessions, provider="meta", address=phone_number_id)
    channel = await channel_at(sessions, phone_number_id, "meta")
    async with sessions.begin() as db:
        session_id = await get_or_create_session(
            channel.builder_id, "whatsapp", "+16505551234", db=db
        )
        turn = Turn(id=uuid.uuid4(), session_id=session_id, status="running", attempts=1)
        db.add(turn)
        await db.flush()
        return await record_reply(
            session_id=session_id,
            turn_id=turn.id,
            retry=0,
            channel_id=channel.id,
            recipient="16505551234",
            parts=parts,
            db=db,
        )


async def test_a_status_naming_a_part_being_sent_records_meta_s_id_for_it(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    first, second = await reply_being_sent(db_sessions, ["One.", "Two."])
    [foreign] = await reply_being_sent(db_sessions, ["Theirs."], phone_number_id="100000000000002")
    await sent_reply(db_sessions, "wamid.EARLIER", provider="meta", address=META_PHONE_NUMBER_ID)

    def status(wamid: str, state: str, callback_data: str) -> bytes:
        update = {
            "id": wamid,
            "status": state,
            "timestamp": "1",
            "recipient_id": "16505551234",
            "biz_opaque_callback_data": callback_data,
        }
        return meta_notification(statuses=[update])

    async with httpx.AsyncClient() as client:
        for body in (
            status("wamid.EARLIER", "read", str(first.id)),  # an id another part has
            status("wamid.ONE", "sent", str(first.id)),
            status("wamid.AGAIN", "sent", str(first.id)),  # a later send's: too late
            status("wamid.TWO", "sent", str(second.id)),  # a part never sent
            status("wamid.OTHER", "sent", "campaign-42"),  # another app's callback data
            status("wamid.THEIRS", "sent", str(foreign.id)),  # another number's part
        ):
            assert (await post_meta(client, f"{receiver}/webhooks/meta", body)).status_code == 200

    async with db_sessions() as db:
        rows = {
            row.id: (row.provider_message_id, row.status)
            for row in await db.scalars(select(OutboundMessage))
        }
    assert rows[first.id] == ("wamid.ONE", "sent")
    assert rows[second.id] == (None, "pending")
    assert rows[foreign.id] == (None, "sending")


async def test_a_redelivered_notification_is_a_no_op(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    body = meta_notification([meta_text_message("hello")])
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            assert (await post_meta(client, f"{receiver}/webhooks/meta", body)).status_code == 200
    assert len(await inbound_messages(db_sessions)) == 1


async def test_a_full_batch_of_three_megabytes_is_accepted(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address="100000000000001")
    messages = [meta_text_message(f"{n} " + "x" * 3000) for n in range(1000)]
    body = meta_notification(messages, phone_number_id="100000000000001")
    assert len(body) > 3_000_000
    async with httpx.AsyncClient(timeout=60) as client:
        response = await post_meta(client, f"{receiver}/webhooks/meta", body)
    assert response.status_code == 200
    rows = await inbound_messages(db_sessions)
    assert [row.text.split()[0] for row in rows] == [str(n) for n in range(1000)]


@pytest.mark.usefixtures("db_sessions")
async def test_bad_signatures_are_refused_with_403(receiver: str) -> None:
    body = meta_notification([meta_text_message("hello")])
    url = f"{receiver}/webhooks/meta"
    async with httpx.AsyncClient() as client:
        missing = await client.post(url, content=body)
        wrong_secret = await post_meta(client, url, body, secret="not-the-secret")
        tampered = await client.post(
            url,
            content=body.replace(b"hello", b"HELLO"),
            headers={"X-Hub-Signature-256": meta_signature(body)},
        )
    assert [r.status_code for r in (missing, wrong_secret, tampered)] == [403, 403, 403]
    assert "missing X-Hub-Signature-256" in missing.text
    assert "invalid X-Hub-Signature-256" in tampered.text


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        (b'{"object": "whatsapp_business_account", "entry": {}}', "entry must be a list"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply"),
    ],
)
async def test_unreadable_notifications_get_400_with_the_reason(
    receiver: str, body: bytes, reason: str
) -> None:
    async with httpx.AsyncClient() as client:
        response = await post_meta(client, f"{receiver}/webhooks/meta", body)
    assert response.status_code == 400
    assert reason in response.text


async def test_a_body_over_four_mebibytes_gets_413(receiver: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await post_meta(
            client, f"{receiver}/webhooks/meta", b" " * (4 * 1024 * 1024 + 1)
        )
    assert response.status_code == 413


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
message_like = st.dictionaries(
    st.sampled_from(
        [
            "id",
            "from",
            "from_user_id",
            "type",
            "text",
            "image",
            "interactive",
            "location",
            "contacts",
            "reaction",
            "button",
            "document",
        ]
    ),
    json_values | st.sampled_from(["text", "image", "location", "wamid.X", "16505551234"]),
)
notification_like = st.fixed_dictionaries(
    {
        "object": st.just("whatsapp_business_account") | json_values,
        "entry": st.lists(
            st.fixed_dictionaries(
                {
                    "changes": st.lists(
                        st.fixed_dictionaries(
                            {
                                "field": st.just("messages") | json_values,
                                "value": st.fixed_dictionaries(
                                    {
                                        "metadata": st.fixed_dictionaries(
                                            {"phone_number_id": st.text(max_size=12) | json_values}
                                        )
                                        | json_values,
                                        "contacts": st.lists(json_values, max_size=2) | json_values,
                                        "messages": st.lists(message_like, max_size=3)
                                        | json_values,
                                        "statuses": st.lists(
                                            st.dictionaries(
                                                st.sampled_from(["id", "status", "errors"]),
                                                json_values,
                                            ),
                                            max_size=2,
                                        )
                                        | json_values,
                                    }
                                )
                                | json_values,
                            }
                        ),
                        max_size=2,
                    )
                    | json_values
                }
            ),
            max_size=2,
        )
        | json_values,
    }
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=notification_like | json_values)
def test_arbitrary_signed_json_never_gets_a_5xx(receiver: str, body: Any) -> None:
    raw = json.dumps(body).encode()
    response = httpx.post(
        f"{receiver}/webhooks/meta",
        content=raw,
        headers={"X-Hub-Signature-256": meta_signature(raw)},
    )
    assert response.status_code in (200, 400), response.text


def test_arbitrary_signed_bytes_never_get_a_5xx(receiver: str) -> None:
    for raw in (b"", b"null", b"\x00" * 10, uuid.uuid4().bytes, b'{"object": null}'):
        response = httpx.post(
            f"{receiver}/webhooks/meta",
            content=raw,
            headers={"X-Hub-Signature-256": meta_signature(raw)},
        )
        assert response.status_code in (200, 400)
