"""`POST /webhooks/twilio`: signed requests are recorded once and enqueued; anything
else is refused with a reason and records nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from urllib.parse import urlencode

import httpx
import pytest
import redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import (
    BOT_NUMBER,
    builder_with_channel,
    fixture_form,
    post_signed,
    sign,
    twilio_form,
)
from tests.fakes.server import free_port
from tests.queries import inbound_messages
from tests.services import REDIS_URL
from webhooks.providers.twilio import parse_inbound

pytestmark = pytest.mark.usefixtures("db_sessions")


def queued_tasks(queue: str) -> int:
    return int(redis.Redis.from_url(REDIS_URL).llen(queue))


@pytest.fixture
def isolated(make_receiver: Callable[..., str]) -> tuple[str, str]:
    """A receiver publishing to a queue no worker reads, so the test can count tasks."""
    queue = f"wabot-test-{uuid.uuid4().hex[:8]}"
    return make_receiver(CELERY_QUEUE=queue), queue


async def test_captured_text_message_is_recorded_enqueued_and_answered_with_empty_twiml(
    db_sessions: async_sessionmaker[AsyncSession], isolated: tuple[str, str]
) -> None:
    base_url, queue = isolated
    form = fixture_form("text.txt")
    await builder_with_channel(db_sessions, address=form["To"])
    async with httpx.AsyncClient() as client:
        response = await post_signed(client, f"{base_url}/webhooks/twilio", form)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith("<Response/>")
    [message] = await inbound_messages(db_sessions)
    assert (message.provider, message.provider_message_id) == ("twilio", form["MessageSid"])
    assert (message.sender, message.recipient, message.text) == (form["From"], form["To"], "test")
    assert message.status == "pending" and message.payload == form
    assert queued_tasks(queue) == 1


async def test_captured_media_message_keeps_the_media(
    db_sessions: async_sessionmaker[AsyncSession], isolated: tuple[str, str]
) -> None:
    base_url, _ = isolated
    form = fixture_form("media_image.txt")
    await builder_with_channel(db_sessions, address=form["To"])
    async with httpx.AsyncClient() as client:
        response = await post_signed(client, f"{base_url}/webhooks/twilio", form)
    assert response.status_code == 200
    [message] = await inbound_messages(db_sessions)
    assert message.text == ""
    assert message.media == [{"url": form["MediaUrl0"], "content_type": "image/jpeg"}]


async def test_a_redelivered_message_sid_is_recorded_and_enqueued_once(
    db_sessions: async_sessionmaker[AsyncSession], isolated: tuple[str, str]
) -> None:
    base_url, queue = isolated
    await builder_with_channel(db_sessions)
    form = twilio_form("hello")
    async with httpx.AsyncClient() as client:
        statuses = [
            (await post_signed(client, f"{base_url}/webhooks/twilio", form)).status_code
            for _ in range(3)
        ]
    assert statuses == [200, 200, 200]
    assert len(await inbound_messages(db_sessions)) == 1
    assert queued_tasks(queue) == 1


async def test_a_number_no_builder_owns_is_acknowledged_and_kept_as_unroutable(
    db_sessions: async_sessionmaker[AsyncSession], isolated: tuple[str, str]
) -> None:
    base_url, queue = isolated
    async with httpx.AsyncClient() as client:
        response = await post_signed(client, f"{base_url}/webhooks/twilio", twilio_form("hi"))
    assert response.status_code == 200
    [message] = await inbound_messages(db_sessions)
    assert message.status == "unroutable" and message.channel_id is None
    assert queued_tasks(queue) == 0


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("body", "invalid X-Twilio-Signature"),
        ("url", "invalid X-Twilio-Signature"),
        ("token", "invalid X-Twilio-Signature"),
        ("missing", "missing X-Twilio-Signature"),
    ],
)
async def test_bad_signatures_are_refused_with_403_and_record_nothing(
    db_sessions: async_sessionmaker[AsyncSession], receiver: str, tamper: str, reason: str
) -> None:
    await builder_with_channel(db_sessions)
    url = f"{receiver}/webhooks/twilio"
    form = twilio_form("hello")
    signed_url = url + "?extra=1" if tamper == "url" else url
    signature = sign(signed_url, form, "wrong-token" if tamper == "token" else "test-auth-token")
    if tamper == "body":
        form["Body"] = "hello, tampered"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if tamper != "missing":
        headers["X-Twilio-Signature"] = signature
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=urlencode(form), headers=headers)
    assert response.status_code == 403
    assert reason in response.text
    assert await inbound_messages(db_sessions) == []


async def test_behind_a_trusted_proxy_the_forwarded_url_is_verified(
    db_sessions: async_sessionmaker[AsyncSession], make_receiver: Callable[..., str]
) -> None:
    await builder_with_channel(db_sessions)
    trusting = make_receiver(TRUST_PROXY_HEADERS="true")
    not_trusting = make_receiver()
    form = twilio_form("via proxy")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "bot.example.com",
        "X-Twilio-Signature": sign("https://bot.example.com/webhooks/twilio", form),
    }
    async with httpx.AsyncClient() as client:
        refused = await client.post(
            f"{not_trusting}/webhooks/twilio", content=urlencode(form), headers=headers
        )
        accepted = await client.post(
            f"{trusting}/webhooks/twilio", content=urlencode(form), headers=headers
        )
    assert refused.status_code == 403
    assert accepted.status_code == 200
    assert len(await inbound_messages(db_sessions)) == 1


async def test_public_base_url_is_what_the_signature_covers(
    db_sessions: async_sessionmaker[AsyncSession], make_receiver: Callable[..., str]
) -> None:
    await builder_with_channel(db_sessions)
    base_url = make_receiver(PUBLIC_BASE_URL="https://hooks.example.com/bot/")
    form = twilio_form("hello")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{base_url}/webhooks/twilio",
            content=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sign("https://hooks.example.com/bot/webhooks/twilio", form),
            },
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"MessageSid": ""}, "missing form field(s): MessageSid"),
        ({"From": "", "To": ""}, "missing form field(s): From, To"),
        ({"NumMedia": "two"}, "NumMedia must be a whole number"),
        ({"NumMedia": "¹"}, "NumMedia must be a whole number"),
        ({"NumMedia": "1"}, "MediaUrl0 is missing"),
    ],
)
async def test_malformed_forms_get_400_with_the_reason(
    db_sessions: async_sessionmaker[AsyncSession],
    receiver: str,
    change: dict[str, str],
    reason: str,
) -> None:
    form = {**twilio_form("hello"), **change}
    async with httpx.AsyncClient() as client:
        response = await post_signed(client, f"{receiver}/webhooks/twilio", form)
    assert response.status_code == 400
    assert reason in response.text
    assert await inbound_messages(db_sessions) == []


async def test_a_body_that_is_not_a_form_gets_400(receiver: str) -> None:
    async with httpx.AsyncClient() as client:
        as_json = await client.post(f"{receiver}/webhooks/twilio", json={"Body": "hi"})
        not_utf8 = await client.post(
            f"{receiver}/webhooks/twilio",
            content=b"Body=\xff\xfe",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert as_json.status_code == 400 and "x-www-form-urlencoded" in as_json.text
    assert not_utf8.status_code == 400 and "UTF-8" in not_utf8.text


async def test_a_body_over_one_mebibyte_gets_413(receiver: str) -> None:
    form = twilio_form("x" * (1024 * 1024))
    async with httpx.AsyncClient() as client:
        response = await post_signed(client, f"{receiver}/webhooks/twilio", form)
    assert response.status_code == 413


async def test_a_database_outage_answers_503_so_twilio_retries(
    make_receiver: Callable[..., str],
) -> None:
    base_url = make_receiver(DATABASE_URL=f"postgresql://127.0.0.1:{free_port()}/none")
    async with httpx.AsyncClient(timeout=20) as client:
        response = await post_signed(client, f"{base_url}/webhooks/twilio", twilio_form("hi"))
    assert response.status_code == 503
    assert "database unavailable" in response.text


async def test_a_broker_outage_still_answers_200_with_the_message_kept(
    db_sessions: async_sessionmaker[AsyncSession], make_receiver: Callable[..., str]
) -> None:
    await builder_with_channel(db_sessions, address=BOT_NUMBER)
    base_url = make_receiver(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    async with httpx.AsyncClient(timeout=30) as client:
        response = await post_signed(client, f"{base_url}/webhooks/twilio", twilio_form("hi"))
    assert response.status_code == 200
    [message] = await inbound_messages(db_sessions)
    assert message.status == "pending"


async def test_concurrent_webhooks_are_each_recorded_and_enqueued_once_in_arrival_order(
    db_sessions: async_sessionmaker[AsyncSession], isolated: tuple[str, str]
) -> None:
    """Many requests at once share inbox batches: each one acknowledged is in the inbox
    once with one task, a concurrent redelivery of the same MessageSid included, and one
    sender's messages get ids in the order they were acknowledged."""
    base_url, queue = isolated
    await builder_with_channel(db_sessions)
    forms = [twilio_form(f"burst {n}", sender=f"whatsapp:+3161000{n:04d}") for n in range(150)]
    redelivered = forms[:30]
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(post_signed(client, f"{base_url}/webhooks/twilio", form) for form in forms),
            *(post_signed(client, f"{base_url}/webhooks/twilio", form) for form in redelivered),
        )
        in_order = []
        for n in range(5):
            form = twilio_form(f"in order {n}")
            assert (
                await post_signed(client, f"{base_url}/webhooks/twilio", form)
            ).status_code == 200
            in_order.append(form["MessageSid"])
    assert [response.status_code for response in responses] == [200] * 180
    rows = await inbound_messages(db_sessions)
    sids = [row.provider_message_id for row in rows]
    assert sorted(sids) == sorted([form["MessageSid"] for form in forms] + in_order)
    assert [sid for sid in sids if sid in in_order] == in_order
    assert queued_tasks(queue) == len(rows)


def test_a_location_reads_the_same_with_or_without_message_type() -> None:
    """Older captures send a shared place as Latitude/Longitude alone, no MessageType."""
    place = {
        "MessageSid": "SM1",
        "From": "whatsapp:+31612345678",
        "To": "whatsapp:+14155238886",
        "Body": "",
        "Latitude": "52.3039",
        "Longitude": "4.7500",
        "Label": "Microsoft",
        "Address": "Evert van de Beekstraat 354",
    }
    typed = parse_inbound({**place, "MessageType": "location"})
    untyped = parse_inbound(place)
    expected = "[location: 52.3039, 4.7500, Microsoft, Evert van de Beekstraat 354]"
    assert (typed.kind, typed.text) == (untyped.kind, untyped.text) == ("location", expected)
