"""A conversation as the dashboard shows it, built from `session_items` and decorated
from the turns that produced them: user and assistant bubbles, tool calls as chips with
their results, delivery ticks, failed turns with their reason, media as placeholders.

A turn owns the items from its `input_sequence` up to the next turn's; its reply's
delivery states go on its last assistant message.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from db import lossless_json
from db.attention import NOT_DELIVERED, Refusal, read_refusal
from db.core.clock import as_utc
from db.lossless_json import plain_text
from db.media import clock
from db.models import InboundMessage, InboundStatus, OutboundMessage, SessionItem, Turn, TurnStatus
from db.transcript import content_text, readable_placeholder, transcript_line
from webhooks.dashboard.attachments import Location, Order, Shown, ShownMedia, shown_json

_PLACEHOLDER = re.compile(r"^\[(?P<what>[^\[\]]+)\]$")


@dataclass
class Entry:
    """One line of the conversation view."""

    sequence: int
    created_at: datetime
    kind: str
    """`user`, `assistant`, `tool` (a call with its result), `tool_result` (a result
    whose call is on an earlier page) or `other`."""
    lines: list[tuple[str, str]] = field(default_factory=list)
    """(`text` or `placeholder`, text) in order."""
    tool_name: str | None = None
    arguments: str | None = None
    output: str | None = None
    delivery: list[str] = field(default_factory=list)
    by_operator: bool = False
    failure: str | None = None
    failed_turn_id: uuid.UUID | None = None
    retryable: bool = False
    end_sequence: int = -1
    """The last item shown in this entry (a tool chip also shows its result's item)."""
    media: list[ShownMedia] = field(default_factory=list)
    order: Order | None = None
    location: Location | None = None
    turn: Turn | None = None
    """On a turn's last assistant message: the turn, for its details on demand."""
    attempts: str | None = None
    """An operator-retried turn's tries: `failed twice: Twilio 63016 …, then replied`."""
    advice: str | None = None
    """Why retrying cannot fix the failure, when it cannot."""
    offer_template: bool = False
    waiting: str | None = None
    """A message not yet in the history: why it has no answer yet."""
    inbound_id: int | None = None
    undelivered: list[str] = field(default_factory=list)
    """Why reply parts were not delivered: `63024 Invalid message recipient`."""


def display_lines(text: str) -> list[tuple[str, str]]:
    """Split a message into text and readable placeholders (`[image/jpeg attached]` →
    `Attachment: image/jpeg`, `[location: 52.37, 4.89, Dam]` → `Location: …`), which the
    worker wrote for what is not text."""
    lines: list[tuple[str, str]] = []
    for line in text.splitlines() or [""]:
        found = _PLACEHOLDER.match(line.strip())
        if found:
            lines.append(("placeholder", _readable(found.group("what"))))
        elif lines and lines[-1][0] == "text":
            lines[-1] = ("text", f"{lines[-1][1]}\n{line}")
        else:
            lines.append(("text", line))
    return lines


def _readable(what: str) -> str:
    if what.startswith("location:"):
        return "Location: " + what.removeprefix("location:").strip()
    if what.endswith(" attached") or " attached: " in what:
        kind, _, name = what.partition(" attached")
        return f"Attachment: {kind}{name}"
    return readable_placeholder(what) or f"[{what}]"


def _owner(turns: list[Turn], sequence: int) -> Turn | None:
    owner = None
    for turn in turns:
        if turn.input_sequence is not None and turn.input_sequence <= sequence:
            owner = turn
    return owner


def build_entries(
    items: list[SessionItem],
    turns: list[Turn],
    replies: dict[uuid.UUID, list[OutboundMessage]],
    shown: dict[int, Shown] | None = None,
) -> list[Entry]:
    """The page's entries in sequence order; `turns` as from `db.dashboard_queries.turns_around`,
    `shown` as from `attachments.shown_items`."""
    shown = shown or {}
    entries: list[Entry] = []
    calls: dict[str, Entry] = {}
    last_assistant: dict[uuid.UUID, Entry] = {}
    for item in items:
        data: dict[str, Any] = item.item_data
        item_type = data.get("type", "message")
        entry = Entry(item.sequence, as_utc(item.created_at), "other", end_sequence=item.sequence)
        turn = _owner(turns, item.sequence)
        if item_type == "message" and data.get("role") in ("user", "assistant"):
            entry.kind = str(data["role"])
            entry.lines = display_lines(content_text(data.get("content")))
            extra = shown.get(item.sequence)
            if extra is not None:
                _show(entry, extra)
            if turn is not None and entry.kind == "assistant":
                last_assistant[turn.id] = entry
                entry.by_operator = turn.by_operator
        elif item_type == "function_call":
            entry.kind = "tool"
            entry.tool_name = plain_text(str(data.get("name")))
            entry.arguments = _pretty(data.get("arguments"))
            calls[str(data.get("call_id"))] = entry
        elif item_type == "function_call_output":
            call = calls.get(str(data.get("call_id")))
            if call is not None:
                call.output = _pretty(data.get("output"))
                call.end_sequence = item.sequence
                continue
            entry.kind = "tool_result"
            entry.output = _pretty(data.get("output"))
        else:
            line = transcript_line(data)
            entry.lines = [("placeholder", line.text or f"[{line.role}]")]
        if turn is not None and turn.input_sequence == item.sequence and not turn.by_operator:
            if turn.status in (TurnStatus.FAILED, TurnStatus.RETRIED):
                entry.failure = turn.error or "failed"
                entry.failed_turn_id = turn.id
                entry.retryable = turn.status == TurnStatus.FAILED
                _advise(entry, read_refusal(entry.failure))
            entry.attempts = tries_summary(turn)
        entries.append(entry)
    by_id = {turn.id: turn for turn in turns}
    for turn_id, entry in last_assistant.items():
        parts = replies.get(turn_id, [])
        entry.delivery = [reply.status for reply in parts]
        for reply in parts:
            if reply.status in NOT_DELIVERED and reply.error:
                refusal = read_refusal(reply.error)
                entry.undelivered.append(refusal.text)
                _advise(entry, refusal)
        entry.turn = by_id[turn_id]
    return entries


def _advise(entry: Entry, refusal: Refusal) -> None:
    if refusal.unfixable is not None:
        entry.retryable = False
        entry.advice = refusal.unfixable
        entry.offer_template = refusal.offer_template


_TIMES = {1: "once", 2: "twice"}


def tries_summary(turn: Turn) -> str | None:
    """A turn retried by an operator, as one line: how often it failed and why (each
    reason once), then how it ended; None for a turn that never failed for good."""
    failed = turn.failed_tries or []
    if not failed or (turn.status == TurnStatus.FAILED and len(failed) == 1):
        return None
    reasons: list[str] = []
    for tried in failed:
        reason = _short_reason(str(tried.get("error") or "failed"))
        if reason not in reasons:
            reasons.append(reason)
    times = _TIMES.get(len(failed), f"{len(failed)} times")
    ending = {TurnStatus.REPLIED: ", then replied", TurnStatus.RUNNING: ", retrying now"}
    return f"failed {times}: {'; '.join(reasons)}{ending.get(TurnStatus(turn.status), '')}"


def _short_reason(error: str) -> str:
    refusal = read_refusal(error)
    if refusal.code is None:
        return error
    provider = next((name for name in ("Twilio", "Meta") if name in error), "")
    return f"{provider} {refusal.text}".strip()


def waiting_entry(message: InboundMessage, *, paused: bool) -> Entry:
    """A user's message not yet in the history, at its arrival time: waiting for a turn
    (or, `paused`, for the operator), or failed before a turn stored it."""
    lines = display_lines(message.text) if message.text else []
    if message.media or not lines:
        what = message.kind if message.kind != "text" else "message"
        lines.insert(0, ("placeholder", f"[{what}]"))
    entry = Entry(-1, as_utc(message.received_at), "user", lines=lines, inbound_id=message.id)
    if message.status == InboundStatus.FAILED:
        entry.waiting, entry.failure = "not answered", message.error or "failed"
    else:
        entry.waiting = "waiting for the operator" if paused else "not answered yet"
    return entry


_SYMBOLS = {
    "photo": "📷",
    "sticker": "🏷️",
    "voice note": "🎤",
    "audio": "🎵",
    "video": "🎬",
    "document": "📄",
}


def entry_summary(entry: Entry) -> str:
    """The entry on one line, as the inbox previews it: what its bubble shows (files, an
    order, a place, then its words and placeholders), such as `📷 Photo: Is this in
    stock?`, `🎤 Voice note 0:12: I'd like…` or `🛒 Order: 2 items`."""
    shown = [_file_summary(file) for file in entry.media]
    words = [file.transcript for file in entry.media if file.transcript]
    if entry.order is not None:
        count = len(entry.order.lines)
        shown.append(f"🛒 Order: {count} item{'' if count == 1 else 's'}")
        words += [entry.order.note] if entry.order.note else []
    if entry.location is not None:
        place = entry.location
        shown.append(
            f"📍 Location: {place.name or place.address or f'{place.latitude}, {place.longitude}'}"
        )
    words += [text for _, text in entry.lines]
    head = ", ".join(shown)
    said = " · ".join(" ".join(text.split()) for text in words if text.strip())
    if head and said:
        return f"{head}{' · ' if ': ' in head else ': '}{said}"
    return head or said


def _file_summary(file: ShownMedia) -> str:
    symbol = _SYMBOLS.get(file.label, "📎")
    if file.info is None:
        return f"{symbol} {file.label.capitalize()} ({file.missing})"
    if file.label == "document" and file.info.filename:
        return f"{symbol} {file.info.filename}"
    length = f" {clock(file.info.duration_seconds)}" if file.info.duration_seconds else ""
    return f"{symbol} {file.label.capitalize()}{length}"


def _show(entry: Entry, extra: Shown) -> None:
    """Files, an order or a location in place of the lines that described them."""
    entry.media, entry.order, entry.location = extra.media, extra.order, extra.location
    if extra.text is not None:
        entry.lines = display_lines(extra.text) if extra.text else []
    elif extra.media:
        entry.lines = [line for line in entry.lines if line != ("placeholder", "[image]")]


def _pretty(value: Any) -> str:
    """Tool arguments arrive as JSON text: shown indented when they parse (U+FFFD for a
    NUL or lone surrogate, which a page cannot show)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return plain_text(value)
    if isinstance(value, str):
        return plain_text(value)
    return plain_text(json.dumps(value, indent=2, ensure_ascii=False))


def item_json(item: SessionItem, shown: Shown | None = None) -> dict[str, Any]:
    """An item for the JSON API: as stored (a value JSON cannot hold in its lossless
    form, see `db.lossless_json`), with the display text extracted and what the
    dashboard shows of it (`attachments.shown_json`)."""
    line = transcript_line(item.item_data)
    return {
        "sequence": item.sequence,
        "created_at": as_utc(item.created_at).isoformat(),
        "role": line.role,
        "text": line.text,
        **shown_json(shown),
        "item": lossless_json.storable(item.item_data),
    }
