"""The inbox previews each conversation's last message as its conversation page shows it:
a photo, a voice note and a catalog order read as such, not as the words stored for the
model. The rows are what the worker stores (its own `user_item`, the provider's
`order_text`), tied to their inbox message and turn as a turn ties them."""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.agent_session import DatabaseSession
from db.media import DatabaseContentStore, NewMedia, add_media, set_media_text
from db.models import InboundMessage, Turn
from db.sessions import get_or_create_session
from tests.factories import FIXTURES, builder_token, builder_with_channel
from webhooks.providers.message_text import order_text
from worker.media.model_input import user_item

MEDIA = FIXTURES / "media"
BUSINESS_NUMBER = "106540352242922"
ORDER = {
    "catalog_id": "354160437058781",
    "text": "Extra napkins please",
    "product_items": [
        {"product_retailer_id": "HAMBURGER", "quantity": 3, "item_price": 30, "currency": "ILS"},
        {"product_retailer_id": "SODA", "quantity": 2, "item_price": 10, "currency": "ILS"},
    ],
}


async def customer_sent(
    sessions: async_sessionmaker[AsyncSession],
    builder: uuid.UUID,
    name: str,
    number: str,
    *,
    kind: str,
    text: str,
    message: dict[str, Any],
    file: tuple[str, str, str] | None = None,
    transcript: str | None = None,
) -> None:
    """`name` sends one Meta message (with `file`: its fixture, kind and type), which a
    turn stores as the conversation's last item."""
    async with sessions.begin() as db:
        session_id = await get_or_create_session(
            builder, "whatsapp", number, display_name=name, db=db
        )
        turn = Turn(
            id=uuid.uuid4(),
            session_id=session_id,
            status="replied",
            attempts=1,
            input_sequence=0,
            input_saved_at=datetime.now(UTC),
        )
        db.add(turn)
        await db.flush()
        inbound = InboundMessage(
            provider="meta",
            provider_message_id=f"wamid.{uuid.uuid4().hex}",
            recipient=BUSINESS_NUMBER,
            sender=number.removeprefix("+"),
            kind=kind,
            text=text,
            media=[{"id": "1234", "kind": file[1]}] if file else [],
            payload={"message": message},
            status="processed",
            session_id=session_id,
            turn_id=turn.id,
        )
        db.add(inbound)
        await db.flush()
        attachments = []
        if file is not None:
            content = (MEDIA / file[0]).read_bytes()
            kept = await add_media(
                NewMedia(
                    session_id=session_id,
                    inbound_message_id=inbound.id,
                    position=0,
                    kind=file[1],
                    content_type=file[2],
                    size_bytes=len(content),
                    sha256=hashlib.sha256(content).hexdigest(),
                    duration_seconds=12.0 if file[1] == "audio" else None,
                ),
                content,
                store=DatabaseContentStore(),
                db=db,
            )
            if transcript is not None:
                await set_media_text(kept.id, transcript=transcript, db=db)
                kept = replace(kept, transcript=transcript)
            attachments.append(kept)
    item = user_item(text, attachments, voice=kind == "audio" or None)
    await DatabaseSession(session_id, engine=sessions.kw["bind"]).add_items([item])


async def test_the_inbox_previews_a_photo_a_voice_note_and_an_order_as_the_page_shows_them(
    receiver: str, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder = await builder_with_channel(db_sessions, provider="meta", address=BUSINESS_NUMBER)
    await customer_sent(
        db_sessions,
        builder,
        "Photo",
        "+31610000001",
        kind="image",
        text="Do you have this cake?",
        message={"type": "image", "image": {"id": "1234", "caption": "Do you have this cake?"}},
        file=("photo.jpg", "image", "image/jpeg"),
    )
    await customer_sent(
        db_sessions,
        builder,
        "Voice",
        "+31610000002",
        kind="audio",
        text="",
        message={"type": "audio", "audio": {"id": "1234", "voice": True}},
        file=("voice_note.ogg", "audio", "audio/ogg"),
        transcript="I'd like to book a table for four",
    )
    await customer_sent(
        db_sessions,
        builder,
        "Order",
        "+31610000003",
        kind="order",
        text=order_text(ORDER),
        message={"type": "order", "order": ORDER},
    )
    token = await builder_token(db_sessions, builder)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        page = await client.get(f"{receiver}/builders/{builder}")
        api = await client.get(f"{receiver}/api/builders/{builder}/sessions")
    rows = re.findall(
        r'<a href="/sessions/[^"]+">(\w+) .*?<td class="preview">(.*?)</td>', page.text, re.S
    )
    shown = {name: html.unescape(preview).strip() for name, preview in rows}
    assert shown == {
        "Photo": "📷 Photo: Do you have this cake?",
        "Voice": "🎤 Voice note 0:12: I'd like to book a table for four",
        "Order": "🛒 Order: 2 items · Extra napkins please",
    }
    assert {s["display_name"]: s["preview"] for s in api.json()["sessions"]} == shown
    assert "[photo" not in page.text and "[voice note" not in page.text
    assert "order from catalog" not in page.text
