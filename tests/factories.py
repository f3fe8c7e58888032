"""Plain functions that make test data: builders with channels, signed Twilio posts."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from twilio.request_validator import RequestValidator

from db.builders import add_channel, create_builder
from tests.fakes.twilio import AUTH_TOKEN

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BOT_NUMBER = "whatsapp:+14155238886"
USER_NUMBER = "whatsapp:+31612345678"


def fixture_form(name: str) -> dict[str, str]:
    """A captured Twilio form body, parsed exactly as sent."""
    return dict(parse_qsl((FIXTURES / "twilio" / name).read_text().strip(), keep_blank_values=True))


async def builder_with_channel(
    sessions: async_sessionmaker[AsyncSession],
    *,
    address: str = BOT_NUMBER,
    instructions: str = "You help customers of a bakery.",
) -> uuid.UUID:
    async with sessions.begin() as db:
        builder = await create_builder(
            name="Test Bakery", instructions=instructions, model="gpt-test", db=db
        )
        await add_channel(builder.id, provider="twilio", address=address, db=db)
        return builder.id


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
