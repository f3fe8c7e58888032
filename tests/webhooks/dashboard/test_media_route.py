"""`GET /media/{id}` over HTTP against the real app: the owner's builder and the admin get
the bytes with headers that make them inert; anyone else learns nothing (401 without a
principal, 404 for another builder's file as for one that never was); a file the
retention sweep removed is gone from the route and shown as no longer kept."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.media import DatabaseContentStore, NewMedia, add_media, delete_media_before
from db.models import InboundMessage
from tests.factories import FIXTURES, stored_session
from tests.webhooks.dashboard.conftest import PHOTO, World

ORDER_PDF = (FIXTURES / "media" / "order.pdf").read_bytes()


async def a_pdf(sessions: async_sessionmaker[AsyncSession], world: World) -> uuid.UUID:
    """The world's failed message also carried `Bestellung März.pdf`, as the worker keeps it."""
    async with sessions.begin() as db:
        message_id = await db.scalar(select(InboundMessage.id))
        assert message_id is not None
        document = NewMedia(
            session_id=world.session,
            inbound_message_id=message_id,
            position=1,
            kind="document",
            content_type="application/pdf",
            size_bytes=len(ORDER_PDF),
            sha256=hashlib.sha256(ORDER_PDF).hexdigest(),
            filename="Bestellung März.pdf",
        )
        return (await add_media(document, ORDER_PDF, store=DatabaseContentStore(), db=db)).id


async def test_the_owner_gets_a_photo_inline_and_inert(receiver: str, world: World) -> None:
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        photo = await client.get(f"{receiver}/media/{world.media}")
        again = await client.get(
            f"{receiver}/media/{world.media}", headers={"If-None-Match": photo.headers["etag"]}
        )
        part = await client.get(f"{receiver}/media/{world.media}", headers={"Range": "bytes=0-99"})
        tail = await client.get(f"{receiver}/media/{world.media}", headers={"Range": "bytes=-10"})
        past = await client.get(
            f"{receiver}/media/{world.media}", headers={"Range": f"bytes={len(PHOTO)}-"}
        )

    assert photo.status_code == 200
    assert photo.content == PHOTO
    assert photo.headers["content-type"] == "image/jpeg"
    assert photo.headers["content-disposition"] == "inline"
    assert photo.headers["x-content-type-options"] == "nosniff"
    assert photo.headers["content-security-policy"] == (
        "default-src 'none'; sandbox; frame-ancestors 'none'"
    )
    assert photo.headers["cache-control"] == "private, no-cache"
    assert photo.headers["etag"] == f'"{hashlib.sha256(PHOTO).hexdigest()}"'
    assert again.status_code == 304 and again.content == b""
    assert part.status_code == 206 and part.content == PHOTO[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(PHOTO)}"
    assert tail.status_code == 206 and tail.content == PHOTO[-10:]
    assert past.status_code == 416
    assert past.headers["content-range"] == f"bytes */{len(PHOTO)}"


async def test_a_document_downloads_under_its_own_name(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    pdf = await a_pdf(db_sessions, world)
    async with httpx.AsyncClient(headers=world.headers("admin")) as client:
        document = await client.get(f"{receiver}/media/{pdf}")

    assert document.status_code == 200 and document.content == ORDER_PDF
    assert document.headers["content-type"] == "application/pdf"
    assert document.headers["content-disposition"] == (
        "attachment; filename=\"Bestellung M_rz.pdf\"; filename*=UTF-8''Bestellung%20M%C3%A4rz.pdf"
    )


async def test_nobody_else_learns_a_file_exists(receiver: str, world: World) -> None:
    async with httpx.AsyncClient() as client:
        anonymous = await client.get(f"{receiver}/media/{world.media}")
        other = await client.get(f"{receiver}/media/{world.media}", headers=world.headers("other"))
        unknown = await client.get(
            f"{receiver}/media/{uuid.uuid4()}", headers=world.headers("builder")
        )
        not_an_id = await client.get(f"{receiver}/media/photo.jpg", headers=world.headers("other"))

    assert anonymous.status_code == 401 and PHOTO not in anonymous.content
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert (other.status_code, unknown.status_code, not_an_id.status_code) == (404, 404, 404)
    assert "no such media" in other.text and "no such media" in unknown.text
    assert PHOTO not in other.content


async def test_a_file_past_its_retention_is_gone_and_shown_as_no_longer_kept(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The world's conversation gets a photo item (as the worker stores one), which the
    retention sweep then removes: the route answers 404, the page says so where the photo
    was, and the caption stays."""
    session = await stored_session(
        db_sessions,
        world.builder,
        [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "[photo, image/jpeg, 2 KB]\nOur cake"},
                    {"type": "input_image", "image_url": f"wabot-media:{world.media}"},
                ],
            }
        ],
    )
    assert session == world.session
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        shown = await client.get(f"{receiver}/sessions/{session}")
        assert f'<img src="/media/{world.media}"' in shown.text
        async with db_sessions.begin() as db:
            removed = await delete_media_before(
                datetime.now(UTC) + timedelta(minutes=1), limit=10, db=db
            )
        assert removed == 1
        gone = await client.get(f"{receiver}/media/{world.media}")
        page = await client.get(f"{receiver}/sessions/{session}")
        listed = await client.get(f"{receiver}/api/sessions/{session}/items")

    assert gone.status_code == 404
    assert "Photo: no longer kept" in page.text
    assert "Our cake" in page.text and "<img" not in page.text
    item = listed.json()["items"][-1]
    assert item["media"] == [
        {
            "media_id": None,
            "kind": "image",
            "label": "photo",
            "content_type": None,
            "size_bytes": None,
            "filename": None,
            "duration_seconds": None,
            "transcript": None,
            "url": None,
            "missing": "no longer kept",
        }
    ]
