"""Plain functions that make test data: builders with channels, signed Twilio posts."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.request_validator import RequestValidator

from db.agent_session import DatabaseSession
from db.builders import add_channel, create_builder, find_channel
from db.core.credentials import ChannelCredentials, CredentialsCipher, new_key
from db.core.meta_signature import meta_signature as signature_of
from db.inbox import ReceivedMessage, record_inbound
from db.models import Channel
from db.sessions import get_or_create_session
from db.tokens import create_token
from tests.fakes.meta import APP_SECRET
from tests.fakes.twilio import AUTH_TOKEN

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BOT_NUMBER = "whatsapp:+14155238886"
USER_NUMBER = "whatsapp:+31612345678"
CREDENTIALS_KEY = new_key()
"""The test processes' CREDENTIALS_KEY (in `service_env`)."""


def fixture_form(name: str) -> dict[str, str]:
    """A captured Twilio form body, parsed exactly as sent."""
    return dict(parse_qsl((FIXTURES / "twilio" / name).read_text().strip(), keep_blank_values=True))


async def builder_with_channel(
    sessions: async_sessionmaker[AsyncSession],
    *,
    address: str = BOT_NUMBER,
    provider: str = "twilio",
    instructions: str = "You help customers of a bakery.",
    unsupported_reply: str | None = None,
    fallback_reply: str | None = None,
    credentials: ChannelCredentials | None = None,
    voice_replies: bool = False,
) -> uuid.UUID:
    """`credentials`: the number's own, stored encrypted with `CREDENTIALS_KEY`."""
    stored = CredentialsCipher(CREDENTIALS_KEY).encrypt(credentials) if credentials else None
    async with sessions.begin() as db:
        builder = await create_builder(
            name="Test Bakery",
            instructions=instructions,
            model="gpt-test",
            unsupported_reply=unsupported_reply,
            fallback_reply=fallback_reply,
            voice_replies=voice_replies,
            db=db,
        )
        await add_channel(builder.id, provider=provider, address=address, credentials=stored, db=db)
        return builder.id


async def channel_at(
    sessions: async_sessionmaker[AsyncSession], address: str, provider: str = "twilio"
) -> Channel:
    """The stored channel of `address` (made by `builder_with_channel`)."""
    async with sessions() as db:
        found = await find_channel(provider, address, db=db)
    assert found is not None
    return found


def received_twilio_text(
    text: str = "Hello",
    *,
    sender: str = USER_NUMBER,
    to: str = BOT_NUMBER,
    profile_name: str | None = None,
) -> ReceivedMessage:
    """A Twilio text as the receiver hands it to `db.inbox.record_inbound`."""
    return ReceivedMessage(
        provider="twilio",
        provider_message_id=f"SM{uuid.uuid4().hex}",
        recipient=to,
        sender=sender,
        sender_wa_id=sender.removeprefix("whatsapp:+"),
        sender_user_id=None,
        profile_name=profile_name,
        kind="text",
        text=text,
        media=[],
        payload={},
    )


async def arrive(
    sessions: async_sessionmaker[AsyncSession],
    channel: Channel,
    text: str,
    media: list[dict[str, Any]] | None = None,
    kind: str = "text",
    user_id: str | None = None,
    profile_name: str = "Ada",
) -> int:
    """Record an inbound message the way the receiver does."""
    received = received_twilio_text(text, to=channel.address, profile_name=profile_name)
    if channel.provider == "meta":
        received = replace(
            received,
            provider="meta",
            provider_message_id=f"wamid.{uuid.uuid4().hex}",
            sender=META_USER_WA_ID,
            sender_wa_id=META_USER_WA_ID,
        )
    received = replace(received, sender_user_id=user_id, kind=kind, media=media or [])
    async with sessions.begin() as db:
        [recorded] = await record_inbound([received], db=db)
    assert recorded.inbound_id is not None and recorded.routed
    return recorded.inbound_id


def twilio_form(
    body: str, *, sid: str | None = None, sender: str = USER_NUMBER, to: str = BOT_NUMBER
) -> dict[str, str]:
    return {
        "MessageSid": sid or f"SM{uuid.uuid4().hex}",
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
        "ProfileName": "Ada",
        "WaId": sender.removeprefix("whatsapp:+"),
    }


def sign(url: str, form: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, form)


async def post_signed(
    client: httpx.AsyncClient, url: str, form: dict[str, str], *, token: str = AUTH_TOKEN
) -> httpx.Response:
    """POST `form` to `url` signed the way Twilio signs it."""
    return await client.post(
        url,
        content=urlencode(form),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(url, form, token),
        },
    )


META_PHONE_NUMBER_ID = "106540352242922"
META_USER_WA_ID = "16505551234"


def meta_fixture(name: str) -> bytes:
    """A captured Meta notification, byte for byte."""
    return (FIXTURES / "meta" / name).read_bytes()


def meta_text_message(
    body: str,
    *,
    wamid: str | None = None,
    wa_id: str | None = META_USER_WA_ID,
    user_id: str | None = None,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": wamid or f"wamid.{uuid.uuid4().hex}",
        "timestamp": "1749416383",
        "type": "text",
        "text": {"body": body},
    }
    if wa_id:
        message["from"] = wa_id
    if user_id:
        message["from_user_id"] = user_id
    return message


def meta_notification(
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    *,
    phone_number_id: str = META_PHONE_NUMBER_ID,
    wa_id: str | None = META_USER_WA_ID,
    user_id: str | None = None,
) -> bytes:
    """A `messages` notification in Meta's envelope, as Meta would POST it."""
    contact: dict[str, Any] = {"profile": {"name": "Sheena Nelson"}}
    if wa_id:
        contact["wa_id"] = wa_id
    if user_id:
        contact["user_id"] = user_id
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
    }
    if messages:
        value["contacts"] = [contact]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    envelope = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }
    return json.dumps(envelope).encode()


def meta_signature(body: bytes, secret: str = APP_SECRET) -> str:
    return signature_of(body, secret)


async def post_meta(
    client: httpx.AsyncClient, url: str, body: bytes, *, secret: str = APP_SECRET
) -> httpx.Response:
    """POST `body` signed the way Meta signs it (HMAC-SHA256 of the raw bytes)."""
    return await client.post(
        url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(body, secret),
        },
    )


async def builder_token(sessions: async_sessionmaker[AsyncSession], builder_id: uuid.UUID) -> str:
    """A live API token of `builder_id` (its secret)."""
    async with sessions.begin() as db:
        return (await create_token(builder_id, name="test", db=db)).secret


async def stored_session(
    sessions: async_sessionmaker[AsyncSession],
    builder_id: uuid.UUID,
    items: list[dict[str, Any]],
    *,
    platform: str = "whatsapp",
    external_id: str = "+31612345678",
    display_name: str | None = "Ada",
) -> uuid.UUID:
    """A session holding `items`, stored through `DatabaseSession` as a run stores them."""
    async with sessions.begin() as db:
        session_id = await get_or_create_session(
            builder_id, platform, external_id, display_name=display_name, db=db
        )
    engine = sessions.kw["bind"]
    await DatabaseSession(session_id, engine=engine).add_items(items)
    return session_id


def tool_exchange(question: str, answer: str) -> list[dict[str, Any]]:
    """The items of one turn in which the model called `current_time`."""
    call_id = f"call_{uuid.uuid4().hex[:8]}"
    return [
        {"role": "user", "content": question},
        {
            "type": "function_call",
            "call_id": call_id,
            "name": "current_time",
            "arguments": '{"timezone": "UTC"}',
        },
        {"type": "function_call_output", "call_id": call_id, "output": "Monday 12:00 UTC"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": answer, "annotations": []}],
        },
    ]


def pdf_with_text(*lines: str) -> bytes:
    """A one-page PDF showing `lines` in Helvetica, as a word processor would save it."""
    shown = " 0 -16 Td ".join(f"({line}) Tj" for line in lines)
    stream = f"BT /F1 12 Tf 72 720 Td {shown} ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    pdf = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(pdf))
        pdf += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(pdf)
    pdf += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    pdf += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    pdf += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return pdf
