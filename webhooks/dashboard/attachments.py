"""What a user's message shows beyond its words: its photos, voice notes and documents,
a catalog order as a table, a shared location with a map link.

A user item holds words (`[voice note 0:12] …`, `[order from catalog …]`) and, for a
photo, a `wabot-media:<id>` reference. Words are written to be read, not parsed back: an
address holds commas, a product id may hold `×`. So each item is tied to the inbox row
it was made of, and the structured data is read from there: the worker stores one user
item per message of a turn, in arrival order, from the turn's `input_sequence` on, so the
n-th message of a turn (by inbox id) made the item at `input_sequence + n`. A tie is kept
only when the item's words end with the message's own text (its caption), so a history
cleared or rewritten since shows no wrong file; an untied item shows its words as before,
and its photos by their reference. Files come from the `media` rows of those messages and
references, read once per page; a file whose row is gone (retention) is shown as no
longer kept.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.lossless_json import plain_text
from db.media import MediaInfo, media_for, referenced_media_id
from db.models import InboundMessage, SessionItem, Turn

_ATTACHMENT = re.compile(r"^\[(?P<label>voice note|audio|photo|sticker|video|document)\b")
_LOCATION_LINE = re.compile(
    r"^\[location: (?P<lat>-?[\d.]+), (?P<lon>-?[\d.]+)(?:, (?P<rest>[^\n]*))?\]$"
)
NO_LONGER_KEPT = "no longer kept"


@dataclass(frozen=True)
class ShownMedia:
    """One attachment of a message: its kept file, or why there is none."""

    label: str
    """What a person calls it: `photo`, `voice note`, `audio`, `video`, `document`…"""
    info: MediaInfo | None
    transcript: str | None = None
    missing: str | None = None
    """Why no file is shown: `no longer kept`, or what could not be read."""

    @property
    def url(self) -> str | None:
        return None if self.info is None else f"/media/{self.info.id}"

    @property
    def kind(self) -> str:
        if self.info is not None:
            return self.info.kind
        return {"photo": "image", "voice note": "audio"}.get(self.label, self.label)


@dataclass(frozen=True)
class OrderLine:
    product: str
    quantity: str
    price: str
    currency: str


@dataclass(frozen=True)
class Order:
    catalog: str | None
    lines: list[OrderLine]
    note: str | None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None

    @property
    def map_url(self) -> str:
        query = urlencode({"mlat": self.latitude, "mlon": self.longitude})
        return f"https://www.openstreetmap.org/?{query}#map=16/{self.latitude}/{self.longitude}"


@dataclass(frozen=True)
class Shown:
    """What an entry shows besides (or instead of) its item's words."""

    media: list[ShownMedia] = field(default_factory=list)
    order: Order | None = None
    location: Location | None = None
    text: str | None = None
    """The words still to show as text (a caption); None: the item's own words."""


async def shown_items(
    items: Sequence[SessionItem], turns: Sequence[Turn], *, db: AsyncSession
) -> dict[int, Shown]:
    """What each user item of a page shows, by sequence; two queries however long the
    page (`shown_sources`)."""
    messages, files = await shown_sources(items, turns, db=db)
    return shown_of(items, turns, messages, files)


async def shown_sources(
    items: Sequence[SessionItem], turns: Sequence[Turn], *, db: AsyncSession
) -> tuple[list[InboundMessage], list[MediaInfo]]:
    """What `shown_of` reads besides the items, for items of any conversations: the inbox
    rows of `turns` (which made their user items), and the files those carried or the
    items reference."""
    starts = [turn.id for turn in turns if turn.input_sequence is not None]
    messages = (
        list(
            await db.scalars(
                select(InboundMessage)
                .where(InboundMessage.turn_id.in_(starts))
                .order_by(InboundMessage.id)
            )
        )
        if starts
        else []
    )
    referenced = {media_id for item in items for media_id in _references(item.item_data)}
    # A message's files are those its `media` listed: one without any has none stored.
    carried = [message.id for message in messages if message.media]
    return messages, await media_for(carried, referenced, db=db)


def shown_of(
    items: Sequence[SessionItem],
    turns: Sequence[Turn],
    messages: Sequence[InboundMessage],
    files: Sequence[MediaInfo],
) -> dict[int, Shown]:
    """What each user item of one conversation shows, by sequence, from the inbox rows
    of its `turns` (in arrival order) and the files: the n-th message of a turn made the
    item at its `input_sequence + n`. `messages` and `files` may hold more than these."""
    starts = {turn.id: turn.input_sequence for turn in turns if turn.input_sequence is not None}
    by_sequence: dict[int, InboundMessage] = {}
    counted: dict[uuid.UUID, int] = {}
    for message in sorted(messages, key=lambda message: message.id):
        if message.turn_id not in starts:
            continue
        number = counted.get(message.turn_id, 0)
        counted[message.turn_id] = number + 1
        by_sequence[starts[message.turn_id] + number] = message
    by_id = {info.id: info for info in files}
    by_position = {
        (info.inbound_message_id, info.position): info
        for info in files
        if info.inbound_message_id is not None  # not our own spoken replies
    }
    shown = {}
    for item in items:
        data = item.item_data
        if data.get("type", "message") != "message" or data.get("role") != "user":
            continue
        found = shown_item(data, by_sequence.get(item.sequence), by_id, by_position)
        if found is not None:
            shown[item.sequence] = found
    return shown


def shown_item(
    data: dict[str, Any],
    message: InboundMessage | None,
    by_id: dict[uuid.UUID, MediaInfo],
    by_position: dict[tuple[int, int], MediaInfo],
) -> Shown | None:
    """What one user item shows; None when only its words."""
    words = _words(data.get("content"))
    if message is not None:
        tied = _from_message(words, message, by_position)
        if tied is not None:
            return tied
    photos = [
        ShownMedia(
            "photo", by_id.get(media_id), missing=None if media_id in by_id else NO_LONGER_KEPT
        )
        for media_id in _references(data)
    ]
    location = _location_of_line(words)
    if not photos and location is None:
        return None
    return Shown(media=photos, location=location, text="" if location else None)


def _references(data: dict[str, Any]) -> list[uuid.UUID]:
    """The files an item's photos reference (`wabot-media:<id>`)."""
    content = data.get("content")
    parts = content if isinstance(content, list) else []
    found = (
        referenced_media_id(part.get("image_url"))
        for part in parts
        if isinstance(part, dict) and part.get("type") == "input_image"
    )
    return [media_id for media_id in found if media_id is not None]


def _from_message(
    words: str, message: InboundMessage, by_position: dict[tuple[int, int], MediaInfo]
) -> Shown | None:
    caption = message.text or ""
    if message.media and words.startswith("[") and words.endswith(caption):
        described = words[: len(words) - len(caption)].rstrip("\n") if caption else words
        segments = _segments(described)
        media = []
        for position in range(len(message.media)):
            info = by_position.get((message.id, position))
            segment = segments[position] if position < len(segments) else ""
            media.append(_shown_media(info, segment, message.media[position]))
        return Shown(media=media, text=caption)
    payload = message.payload if isinstance(message.payload, dict) else {}
    if message.kind == "order" and words == caption:
        order = _order(payload)
        return None if order is None else Shown(order=order, text="")
    if message.kind == "location" and words == caption:
        location = _location(message.provider, payload)
        return None if location is None else Shown(location=location, text="")
    return None


def _segments(described: str) -> list[str]:
    """The attachment descriptions, one per file (a document's text follows its line)."""
    segments: list[str] = []
    for line in described.splitlines():
        if _ATTACHMENT.match(line) or not segments:
            segments.append(line)
        else:
            segments[-1] += "\n" + line
    return segments


def _shown_media(info: MediaInfo | None, segment: str, sent: Any) -> ShownMedia:
    header, _, _ = segment.partition("\n")
    found = _ATTACHMENT.match(header)
    sent_kind = sent.get("kind") if isinstance(sent, dict) else None
    label = found["label"] if found else _label(info.kind if info else str(sent_kind or "file"))
    _, closed, heard = header.partition("] ")
    transcript = info.transcript if info is not None else (heard if closed else None)
    if info is not None:
        return ShownMedia(label, info, transcript=transcript)
    unreadable = header.partition(": could not be read ")[2]
    missing = f"could not be read {unreadable.rstrip(']')}" if unreadable else NO_LONGER_KEPT
    return ShownMedia(label, None, transcript=transcript or None, missing=missing)


def _label(kind: str) -> str:
    return {"image": "photo", "audio": "audio"}.get(kind, kind)


def _words(content: Any) -> str:
    """The item's words, without its image parts."""
    if isinstance(content, str):
        return plain_text(content)
    if not isinstance(content, list):
        return ""
    return plain_text(
        "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "input_text"
        )
    )


def _order(payload: dict[str, Any]) -> Order | None:
    """A Meta catalog order from its notification (`message.order`)."""
    message = payload.get("message")
    order = message.get("order") if isinstance(message, dict) else None
    if not isinstance(order, dict) or not isinstance(order.get("product_items"), list):
        return None
    lines = [
        OrderLine(
            product=_field(item.get("product_retailer_id")),
            quantity=_field(item.get("quantity")),
            price=_field(item.get("item_price")),
            currency=_field(item.get("currency")),
        )
        for item in order["product_items"]
        if isinstance(item, dict)
    ]
    note = order.get("text")
    catalog = order.get("catalog_id")
    return Order(
        catalog=_field(catalog) or None,
        lines=lines,
        note=plain_text(note) if isinstance(note, str) and note.strip() else None,
    )


def _location(provider: str, payload: dict[str, Any]) -> Location | None:
    """Meta's `message.location`, or Twilio's `Latitude`/`Longitude`/`Label`/`Address`."""
    if provider == "twilio":
        fields = [payload.get(key) for key in ("Latitude", "Longitude", "Label", "Address")]
    else:
        message = payload.get("message")
        body = message.get("location") if isinstance(message, dict) else None
        if not isinstance(body, dict):
            return None
        fields = [body.get(key) for key in ("latitude", "longitude", "name", "address")]
    latitude, longitude = _coordinate(fields[0], 90), _coordinate(fields[1], 180)
    if latitude is None or longitude is None:
        return None
    name, address = (_field(value) or None for value in fields[2:])
    return Location(latitude, longitude, name, address)


def _location_of_line(words: str) -> Location | None:
    """The coordinates of a `[location: …]` item with no inbox row; its name and address
    stay together (written joined by commas, as an address holds them too)."""
    found = _LOCATION_LINE.match(words)
    if found is None:
        return None
    latitude, longitude = _coordinate(found["lat"], 90), _coordinate(found["lon"], 180)
    if latitude is None or longitude is None:
        return None
    return Location(latitude, longitude, found["rest"] or None)


def _coordinate(value: Any, limit: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and -limit <= number <= limit else None


def _field(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return plain_text(str(value))


def media_json(shown: ShownMedia) -> dict[str, Any]:
    """An attachment for the JSON API."""
    info = shown.info
    return {
        "media_id": None if info is None else str(info.id),
        "kind": shown.kind,
        "label": shown.label,
        "content_type": None if info is None else info.content_type,
        "size_bytes": None if info is None else info.size_bytes,
        "filename": None if info is None else info.filename,
        "duration_seconds": None if info is None else info.duration_seconds,
        "transcript": shown.transcript,
        "url": shown.url,
        "missing": shown.missing,
    }


def shown_json(shown: Shown | None) -> dict[str, Any]:
    """The `media`, `order` and `location` of an item in the JSON API."""
    if shown is None:
        return {"media": [], "order": None, "location": None}
    order = shown.order
    location = shown.location
    return {
        "media": [media_json(each) for each in shown.media],
        "order": None
        if order is None
        else {
            "catalog": order.catalog,
            "items": [
                {
                    "product": line.product,
                    "quantity": line.quantity,
                    "price": line.price,
                    "currency": line.currency,
                }
                for line in order.lines
            ],
            "note": order.note,
        },
        "location": None
        if location is None
        else {
            "latitude": location.latitude,
            "longitude": location.longitude,
            "name": location.name,
            "address": location.address,
            "map_url": location.map_url,
        },
    }
