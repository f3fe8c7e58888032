"""A small world for the dashboard's tests: two builders with a token each, and a
WhatsApp conversation of the first holding a tool call, a reply and a failed turn."""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, async_playwright
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.attention import note_attention
from db.media import DatabaseContentStore, NewMedia, add_media
from db.models import Channel, InboundMessage, InboundStatus, Turn, TurnStatus
from tests.conftest import ADMIN_TOKEN, ROOT
from tests.factories import (
    FIXTURES,
    USER_NUMBER,
    builder_token,
    builder_with_channel,
    stored_session,
    tool_exchange,
)

PHOTO = (FIXTURES / "media" / "photo.jpg").read_bytes()


@dataclass(frozen=True)
class World:
    builder: uuid.UUID
    other_builder: uuid.UUID
    token: str
    other_token: str
    session: uuid.UUID
    failed_turn: uuid.UUID
    media: uuid.UUID
    """A photo in the session (`PHOTO`), as the worker keeps one."""
    channel: uuid.UUID
    """The first builder's number."""

    def headers(self, who: str) -> dict[str, str]:
        """Request headers for `none`, `admin`, `builder` (the owner) or `other`."""
        token = {"admin": ADMIN_TOKEN, "builder": self.token, "other": self.other_token}.get(who)
        return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
async def world(db_sessions: async_sessionmaker[AsyncSession]) -> World:
    builder = await builder_with_channel(db_sessions)
    other = await builder_with_channel(db_sessions, address="whatsapp:+14155230000")
    items = [
        *tool_exchange("What time is it?", "It is noon."),
        {"role": "user", "content": "Book a table\n[image/jpeg attached]"},
        {"role": "assistant", "content": "Sorry, something went wrong."},
    ]
    session = await stored_session(db_sessions, builder, items)
    async with db_sessions.begin() as db:
        channel = await db.scalar(select(Channel).where(Channel.builder_id == builder))
        assert channel is not None
        turn = Turn(
            id=uuid.uuid4(),
            session_id=session,
            status=TurnStatus.FAILED,
            attempts=1,
            input_sequence=4,
            error="model API 400: bad request",
        )
        db.add(turn)
        await db.flush()
        await note_attention(session, db=db)  # as the worker does when a turn fails
        message = InboundMessage(
            provider="twilio",
            provider_message_id=f"SM{uuid.uuid4().hex}",
            channel_id=channel.id,
            recipient=channel.address,
            sender=USER_NUMBER,
            text="Book a table",
            media=[{"url": "https://api.twilio.com/Media/ME1", "content_type": "image/jpeg"}],
            payload={},
            status=InboundStatus.FAILED,
            session_id=session,
            turn_id=turn.id,
            error=turn.error,
        )
        db.add(message)
        await db.flush()
        photo = NewMedia(
            session_id=session,
            inbound_message_id=message.id,
            position=0,
            kind="image",
            content_type="image/jpeg",
            size_bytes=len(PHOTO),
            sha256=hashlib.sha256(PHOTO).hexdigest(),
        )
        media = await add_media(photo, PHOTO, store=DatabaseContentStore(), db=db)
    return World(
        builder=builder,
        other_builder=other,
        token=await builder_token(db_sessions, builder),
        other_token=await builder_token(db_sessions, other),
        session=session,
        failed_turn=turn.id,
        media=media.id,
        channel=channel.id,
    )


def csrf_of(page: httpx.Response) -> str:
    """The CSRF token in a page's forms."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


async def browser_signed_in(client: httpx.AsyncClient, token: str) -> str:
    """Sign `client` in through the form, as a browser does; returns the CSRF token its
    pages carry from then on (signing in makes a fresh one)."""
    form = await client.get("/login")
    signed_in = await client.post("/login", data={"token": token, "csrf_token": csrf_of(form)})
    assert signed_in.status_code == 303, signed_in.text
    return csrf_of(await client.get("/login"))


CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"


def _chromium_or_fail() -> None:
    """A missing browser fails the tests, naming the fix; it never skips them."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. Install it with "
            "`apt-get install chromium` (`make test` does when run as root)."
        )
    ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One headless Chromium for every browser test (Debian's, never a downloaded one)."""
    _chromium_or_fail()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield chromium
        await chromium.close()
