"""Whatever a sender posts, with a valid signature or without, the receiver answers
with a clear 2xx/4xx and the parsers never raise anything but their own refusal."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import ImmutableMultiDict
from starlette.exceptions import HTTPException

from db.models import InboundMessage
from tests.factories import (
    fixture_form,
    meta_notification,
    meta_signature,
    meta_text_message,
    post_signed,
    sign,
    twilio_form,
)
from tests.webhooks.providers.test_meta_webhook import json_values, notification_like
from webhooks.providers.meta_notification import MalformedNotification, parse_notification
from webhooks.providers.twilio import parse_inbound

TWILIO_KEYS = [
    "MessageSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "MediaUrl1",
    "ProfileName",
    "WaId",
    "MessageType",
    "Latitude",
    "Longitude",
    "ButtonText",
]
form_values = st.text(max_size=40) | st.sampled_from(["0", "1", "3", "-1", "10", "whatsapp:+1"])
twilio_forms = st.dictionaries(st.sampled_from(TWILIO_KEYS) | st.text(max_size=10), form_values)


@pytest.mark.slow
@settings(max_examples=1_000, deadline=None)
@given(body=notification_like | json_values)
def test_the_meta_parser_reads_or_refuses_any_json(body: Any) -> None:
    try:
        parse_notification(body)
    except MalformedNotification:
        pass


@pytest.mark.slow
@settings(max_examples=1_000, deadline=None)
@given(form=twilio_forms)
def test_the_twilio_parser_reads_or_refuses_any_form(form: dict[str, str]) -> None:
    try:
        parse_inbound(ImmutableMultiDict(form))
    except HTTPException as refusal:
        assert refusal.status_code == 400


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(form=twilio_forms)
@example(form={"MessageSid": "0", "From": "0", "To": "\x00"})
@example(form={"MessageSid": "SM\x00", "From": "whatsapp:+1\x00", "To": "0", "Body": "\x00"})
def test_arbitrary_signed_twilio_forms_never_get_a_5xx(receiver: str, form: dict[str, str]) -> None:
    url = f"{receiver}/webhooks/twilio"
    response = httpx.post(
        url,
        content=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(url, form),
        },
    )
    assert response.status_code in (200, 400), response.text


@pytest.mark.parametrize(
    "header",
    [
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "SHA256=" + "0" * 64,
        "sha256=" + "z" * 64,
        "sha256=" + "0" * 63,
        "md5=whatever",
        "sha256=é".encode("latin-1"),
    ],
)
async def test_malformed_meta_signatures_are_refused(receiver: str, header: str | bytes) -> None:
    body = meta_notification([meta_text_message("hi")])
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{receiver}/webhooks/meta", content=body, headers={"X-Hub-Signature-256": header}
        )
    assert response.status_code == 403


async def test_the_sha256_prefix_is_required(receiver: str) -> None:
    body = meta_notification([meta_text_message("hi")])
    bare = meta_signature(body).removeprefix("sha256=")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{receiver}/webhooks/meta", content=body, headers={"X-Hub-Signature-256": bare}
        )
    assert response.status_code == 403


@pytest.mark.parametrize("signature", ["", "not base64!", "A" * 28, "é".encode("latin-1")])
async def test_malformed_twilio_signatures_are_refused(
    receiver: str, signature: str | bytes
) -> None:
    form = twilio_form("hello")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{receiver}/webhooks/twilio",
            content=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )
    assert response.status_code == 403


async def test_nul_in_a_meta_routing_field_is_not_a_5xx(receiver: str) -> None:
    body = meta_notification([meta_text_message("hi")], phone_number_id="1066\u0000")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{receiver}/webhooks/meta",
            content=body,
            headers={"X-Hub-Signature-256": meta_signature(body)},
        )
    assert response.status_code == 200


async def test_ids_too_long_and_numbers_too_long_are_refused_by_name(receiver: str) -> None:
    long_sender = meta_notification([meta_text_message("hi", wa_id="1" * 600)], wa_id="1" * 600)
    long_number = meta_notification([meta_text_message("hi") | {"n": "N"}]).replace(
        b'"N"', b"9" * 5000
    )
    form = twilio_form("hi") | {"WaId": "3" * 600}
    async with httpx.AsyncClient() as client:
        responses = [
            await client.post(
                f"{receiver}/webhooks/meta",
                content=body,
                headers={"X-Hub-Signature-256": meta_signature(body)},
            )
            for body in (long_sender, long_number)
        ]
        responses.append(await post_signed(client, f"{receiver}/webhooks/twilio", form))
    assert [response.status_code for response in responses] == [400, 400, 400]
    assert (
        responses[0].text
        == "entry[0].changes[0].value.messages[0].from is longer than 512 characters"
    )
    assert "the body holds a number we cannot read" in responses[1].text
    assert responses[2].text.startswith("WaId is longer than 512 characters")


async def test_nul_in_a_delivery_status_is_not_a_5xx(receiver: str) -> None:
    form = {
        **fixture_form("status_delivered.txt"),
        "MessageSid": "SM\x00",
        "MessageStatus": "failed",
        "ErrorCode": "30008",
        "ErrorMessage": "Unknown \x00 error",
    }
    async with httpx.AsyncClient() as client:
        response = await post_signed(client, f"{receiver}/webhooks/twilio/status", form)
    assert response.status_code == 200


async def test_unicode_nul_and_huge_fields_are_recorded(
    receiver: str, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = meta_notification([meta_text_message("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0000 " + "ü" * 200_000)])
    form = twilio_form("😀" * 50_000)
    async with httpx.AsyncClient() as client:
        meta = await client.post(
            f"{receiver}/webhooks/meta",
            content=body,
            headers={"X-Hub-Signature-256": meta_signature(body)},
        )
        twilio = await client.post(
            f"{receiver}/webhooks/twilio",
            content=urlencode(form),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sign(f"{receiver}/webhooks/twilio", form),
            },
        )
    assert (meta.status_code, twilio.status_code) == (200, 200)
    async with db_sessions() as db:
        rows = (
            await db.execute(
                select(InboundMessage.text, InboundMessage.payload).order_by(InboundMessage.id)
            )
        ).all()
    # The agent reads U+FFFD where a text column cannot hold the NUL; the payload keeps it.
    assert [text for text, _ in rows] == ["𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \ufffd " + "ü" * 200_000, "😀" * 50_000]
    assert rows[0].payload["message"]["text"]["body"] == "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u0000 " + "ü" * 200_000
