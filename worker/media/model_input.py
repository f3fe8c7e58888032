"""How media live in the history and reach the model.

A message's user item says in words what came (`[voice note 0:12] I'd like…`,
`[document menu.pdf, application/pdf, 12 KB]` and its text) and, for a photo or sticker,
holds an `input_image` part whose `image_url` is a reference (`wabot-media:<id>`), never
the bytes: the history stays small however many photos a conversation has.

Right before each model call (`call_model_input_filter`), the photos of the turn being
answered are swapped for data URLs of their bytes; those of earlier turns for a line of
text, so an old photo is not sent (and paid for) again on every turn.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from agents.items import TResponseInputItem
from agents.run_config import CallModelData, ModelInputData
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.media import (
    MediaContentStore,
    MediaInfo,
    clock,
    media_info,
    readable_size,
    referenced_media_id,
)
from worker.media.sniffing import IMAGE_TYPES, declared_family

EARLIER_PHOTO = "[this image was shown to you when it arrived; it is not shown again]"
GONE_PHOTO = "[this image is no longer kept]"

ModelInputFilter = Callable[[CallModelData[Any]], Awaitable[ModelInputData]]


@dataclass(frozen=True)
class Unreadable:
    """An attachment that could not be fetched or read, and why (in a few words)."""

    kind: str
    reason: str


Attachment = MediaInfo | Unreadable


def user_item(
    text: str, attachments: list[Attachment], *, voice: bool | None = None
) -> TResponseInputItem:
    """The user item of one WhatsApp message: what each attachment was (and said, or
    reads), then the message's own text (a caption); photos as referenced images.
    `voice` is Meta's `audio.voice` (a voice note recorded in the chat, not a forwarded
    audio file); None (Twilio does not say) guesses from the format."""
    lines = [description(attachment, voice=voice) for attachment in attachments]
    if text:
        lines.append(text)
    words = "\n".join(lines) or "[empty message]"
    images = [
        {"type": "input_image", "image_url": attachment.reference, "detail": "auto"}
        for attachment in attachments
        if isinstance(attachment, MediaInfo) and shown_as_image(attachment)
    ]
    if not images:
        return {"role": "user", "content": words}
    content: list[Any] = [{"type": "input_text", "text": words}, *images]
    return {"role": "user", "content": content}


def shown_as_image(media: MediaInfo) -> bool:
    return media.kind in ("image", "sticker") and declared_family(media.content_type) in IMAGE_TYPES


def description(attachment: Attachment, *, voice: bool | None = None) -> str:
    """One line: what an attachment is, and what it said or reads."""
    if isinstance(attachment, Unreadable):
        label = _label(attachment.kind, None, voice)
        return f"[{label}: could not be read ({attachment.reason})]"
    media = attachment
    label = _label(media.kind, media.content_type, voice)
    size = readable_size(media.size_bytes)
    if media.kind == "audio":
        length = f" {clock(media.duration_seconds)}" if media.duration_seconds else ""
        name = f", {media.filename}" if media.filename else ""
        return f"[{label}{length}{name}] {media.transcript or ''}".rstrip()
    if media.kind == "video":
        length = f" {clock(media.duration_seconds)}" if media.duration_seconds else ""
        return f"[video{length}, {size}: videos cannot be watched here]"
    if media.kind in ("image", "sticker"):
        return f"[{label}, {media.content_type}, {size}]"
    name = f"{media.filename}, " if media.filename else ""
    header = f"[document {name}{media.content_type}, {size}]"
    return f"{header}\n{media.extracted_text}" if media.extracted_text else header


def _label(kind: str, content_type: str | None, voice: bool | None) -> str:
    """What a person would call it: a voice note when Meta says so; without its word
    (Twilio), WhatsApp's voice notes are the OGG/Opus audio."""
    if kind == "audio":
        if voice is not None:
            return "voice note" if voice else "audio"
        return (
            "voice note"
            if content_type is None or declared_family(content_type) == "ogg"
            else "audio"
        )
    return {"image": "photo", "sticker": "sticker", "video": "video"}.get(kind, "document")


def media_filter(
    sessionmaker: async_sessionmaker[AsyncSession], store: MediaContentStore
) -> ModelInputFilter:
    """The run's `call_model_input_filter`: the current turn's photos as data URLs (read
    once per run), earlier ones as a line of text."""
    loaded: dict[uuid.UUID, str | None] = {}

    async def data_url(media_id: uuid.UUID) -> str | None:
        if media_id not in loaded:
            async with sessionmaker() as db:
                info = await media_info(media_id, db=db)
                content = None if info is None else await store.get(media_id, db=db)
            loaded[media_id] = (
                None
                if info is None or content is None
                else f"data:{info.content_type};base64,{base64.b64encode(content).decode()}"
            )
        return loaded[media_id]

    async def swap(data: CallModelData[Any]) -> ModelInputData:
        items = data.model_data.input
        current = _current_turn_start(items)
        swapped: list[TResponseInputItem] = []
        for number, item in enumerate(items):
            content = item.get("content")
            if not (isinstance(content, list) and any(map(_is_reference, content))):
                swapped.append(item)
                continue
            parts = []
            for part in content:
                media_id = (
                    referenced_media_id(part.get("image_url")) if _is_reference(part) else None
                )
                if media_id is None:
                    parts.append(part)
                    continue
                url = await data_url(media_id) if number >= current else None
                if url is not None:
                    parts.append({**part, "image_url": url})
                else:
                    stand_in = EARLIER_PHOTO if number < current else GONE_PHOTO
                    parts.append({"type": "input_text", "text": stand_in})
            swapped.append(cast(TResponseInputItem, {**item, "content": parts}))
        return ModelInputData(input=swapped, instructions=data.model_data.instructions)

    return swap


def _is_reference(part: Any) -> bool:
    return (
        isinstance(part, dict)
        and part.get("type") == "input_image"
        and referenced_media_id(part.get("image_url")) is not None
    )


def _current_turn_start(items: list[TResponseInputItem]) -> int:
    """Where the messages being answered begin: the last run of user items (what the
    model did for them since, tool calls and their results, follows)."""
    end = len(items)
    while end and items[end - 1].get("role") != "user":
        end -= 1
    start = end
    while start and items[start - 1].get("role") == "user":
        start -= 1
    return start if end else len(items)
