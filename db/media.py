"""The media users sent, and the voice notes we send them: what each file is (the `media`
table) and where its bytes live (a `MediaContentStore`; the database's own by default).

A file is fetched from the provider once, by the worker, and kept here for every later
turn, the dashboard and every host of a fleet; the session's history refers to it by id
(`wabot-media:<id>`), never holds its bytes. A spoken reply is kept here once made, with
no inbox message, so a resumed send sends the same audio and the receiver can serve it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import Text, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.core.clock import as_utc
from db.engine import close_after_use
from db.models import Media
from db.prepared import defer, run

LARGE_FILE_BYTES = 1024 * 1024
"""Files over this size close the database connection that carried them (see below)."""
MEDIA_REFERENCE = "wabot-media:"
"""How a session item points at a stored file: `wabot-media:<media id>`."""


@dataclass(frozen=True)
class NewMedia:
    """A file just fetched, before it is stored."""

    session_id: uuid.UUID
    inbound_message_id: int
    position: int
    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    filename: str | None = None
    duration_seconds: float | None = None


@dataclass(frozen=True)
class MediaInfo:
    """What a stored file is, without its bytes."""

    id: uuid.UUID
    session_id: uuid.UUID
    inbound_message_id: int | None
    """None for a file we sent (a spoken reply)."""
    position: int
    kind: str
    content_type: str
    size_bytes: int
    sha256: str
    filename: str | None
    duration_seconds: float | None
    transcript: str | None
    extracted_text: str | None
    created_at: datetime

    @property
    def reference(self) -> str:
        """What a session item holds in place of the bytes."""
        return media_reference(self.id)


class MediaContentStore(Protocol):
    """Where media bytes live. The database store keeps them in `media.content`; an
    S3-compatible store would keep them under the media id and ignore `db`."""

    async def put(self, media_id: uuid.UUID, content: bytes, *, db: AsyncSession) -> None:
        """Keep `content` for `media_id` (its row exists in `db`'s transaction)."""

    async def get(self, media_id: uuid.UUID, *, db: AsyncSession) -> bytes | None:
        """The bytes of `media_id`; None once deleted."""


class DatabaseContentStore:
    """Media bytes in the `media` row itself (bytea on Postgres, a BLOB on SQLite).

    A connection that carried a file over `LARGE_FILE_BYTES` is closed once its unit of
    work ends (`close_after_use`): kept in the pool, its libpq buffers would hold the
    file's size for good. The price is a new connection per large file."""

    async def put(self, media_id: uuid.UUID, content: bytes, *, db: AsyncSession) -> None:
        if len(content) > LARGE_FILE_BYTES:
            await close_after_use(db)
        await db.execute(update(Media).where(Media.id == media_id).values(content=content))

    async def get(self, media_id: uuid.UUID, *, db: AsyncSession) -> bytes | None:
        content = await db.scalar(select(Media.content).where(Media.id == media_id))
        if content is not None and len(content) > LARGE_FILE_BYTES:
            await close_after_use(db)
        return None if content is None else bytes(content)


def media_reference(media_id: uuid.UUID) -> str:
    return f"{MEDIA_REFERENCE}{media_id}"


def referenced_media_id(url: object) -> uuid.UUID | None:
    """The media id a `wabot-media:` reference names; None for anything else."""
    if not isinstance(url, str) or not url.startswith(MEDIA_REFERENCE):
        return None
    try:
        return uuid.UUID(url.removeprefix(MEDIA_REFERENCE))
    except ValueError:
        return None


async def add_media(
    new: NewMedia,
    content: bytes,
    *,
    store: MediaContentStore,
    db: AsyncSession,
) -> MediaInfo:
    """Record a fetched file and keep its bytes, in `db`'s transaction (its row goes
    with the store's first statement)."""
    row = {"id": uuid.uuid4(), **dataclasses.asdict(new), "created_at": datetime.now(UTC)}
    await defer(db, _ADD_MEDIA, **row)
    await store.put(row["id"], content, db=db)
    # `created_at` is known here: nothing is read back after the insert.
    return MediaInfo(**row, transcript=None, extracted_text=None)


_ADD_MEDIA = insert(Media).values(
    {
        name: bindparam(name, type_=Media.__table__.c[name].type)
        for name in ("id", *(field.name for field in dataclasses.fields(NewMedia)), "created_at")
    }
)


async def add_reply_audio(
    session_id: uuid.UUID,
    content: bytes,
    *,
    content_type: str,
    duration_seconds: float | None,
    store: MediaContentStore,
    db: AsyncSession,
) -> uuid.UUID:
    """Keep a spoken reply made for `session_id`, in `db`'s transaction; returns its id."""
    row = Media(
        session_id=session_id,
        inbound_message_id=None,
        position=0,
        kind="audio",
        content_type=content_type,
        size_bytes=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        duration_seconds=duration_seconds,
    )
    db.add(row)
    await db.flush()
    await store.put(row.id, content, db=db)
    return row.id


async def reply_audio(
    media_id: uuid.UUID, *, store: MediaContentStore, db: AsyncSession
) -> tuple[bytes, str] | None:
    """A spoken reply's bytes and content type; None for an unknown id, a user's file
    (never served this way) or one deleted."""
    content_type = await db.scalar(
        select(Media.content_type).where(Media.id == media_id, Media.inbound_message_id.is_(None))
    )
    if content_type is None:
        return None
    content = await store.get(media_id, db=db)
    return None if content is None else (content, content_type)


async def media_of_messages(
    inbound_ids: Sequence[int], *, db: AsyncSession
) -> dict[tuple[int, int], MediaInfo]:
    """The files already stored for these inbox messages, by (message id, position)."""
    if not inbound_ids:
        return {}
    rows = await db.scalars(select(Media).where(Media.inbound_message_id.in_(inbound_ids)))
    return {
        (row.inbound_message_id, row.position): info_of(row)
        for row in rows
        if row.inbound_message_id is not None
    }


async def media_info(media_id: uuid.UUID, *, db: AsyncSession) -> MediaInfo | None:
    row = await db.get(Media, media_id)
    return None if row is None else info_of(row)


async def media_for(
    message_ids: Collection[int], media_ids: Collection[uuid.UUID], *, db: AsyncSession
) -> list[MediaInfo]:
    """The files these inbox messages carried and those with these ids (what items
    reference), by the indexes on `(inbound_message_id, position)` and `id`."""
    if not message_ids and not media_ids:
        return []
    rows = await db.scalars(
        select(Media).where(or_(Media.inbound_message_id.in_(message_ids), Media.id.in_(media_ids)))
    )
    return [info_of(row) for row in rows]


async def set_media_text(
    media_id: uuid.UUID,
    *,
    transcript: str | None = None,
    extracted_text: str | None = None,
    db: AsyncSession,
) -> None:
    """Keep what a voice note said or a document reads, so a retried turn reuses it."""
    if transcript is not None or extracted_text is not None:
        await run(
            db, _SET_TEXT, media_id=media_id, transcript=transcript, extracted_text=extracted_text
        )


_SET_TEXT = (
    update(Media)
    .where(Media.id == bindparam("media_id"))
    .values(  # None keeps what is there
        transcript=func.coalesce(bindparam("transcript", type_=Text), Media.transcript),
        extracted_text=func.coalesce(bindparam("extracted_text", type_=Text), Media.extracted_text),
    )
)


async def delete_media_before(cutoff: datetime, *, limit: int, db: AsyncSession) -> int:
    """Delete up to `limit` files stored before `cutoff` (the retention sweep); returns how
    many went."""
    oldest = select(Media.id).where(Media.created_at < cutoff).order_by(Media.created_at)
    ids = list(await db.scalars(oldest.limit(limit)))
    if ids:
        await db.execute(delete(Media).where(Media.id.in_(ids)))
    return len(ids)


def info_of(row: Media) -> MediaInfo:
    """A `media` row as what it is, without its bytes."""
    return MediaInfo(
        id=row.id,
        session_id=row.session_id,
        inbound_message_id=row.inbound_message_id,
        position=row.position,
        kind=row.kind,
        content_type=row.content_type,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        filename=row.filename,
        duration_seconds=row.duration_seconds,
        transcript=row.transcript,
        extracted_text=row.extracted_text,
        created_at=as_utc(row.created_at),
    )


def clock(seconds: float) -> str:
    """`0:12`, `3:05`, as WhatsApp shows a voice note's length."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def readable_size(size: int) -> str:
    """`731 bytes`, `48 KB`, `1.2 MB`: a file's size as the agent and the dashboard say it."""
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
