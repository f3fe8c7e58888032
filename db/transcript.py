"""Readable text for stored SDK items: what a transcript, the CLI or a dashboard shows.

Always in `lossless_json.plain_text` form (U+FFFD for a NUL or a lone surrogate an item
may hold): it is shown on pages and terminals and stored in text columns."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from db.lossless_json import plain_text


@dataclass(frozen=True)
class TranscriptLine:
    """`role` is `user`, `assistant`, `tool` or the item type we could not render."""

    role: str
    text: str


def transcript_line(item: dict[str, Any]) -> TranscriptLine:
    """Render one `item_data`: messages as their text, tool calls and results as chips."""
    item_type = item.get("type", "message")
    if item_type == "message":
        return TranscriptLine(item.get("role", "unknown"), content_text(item.get("content")))
    if item_type == "function_call":
        return TranscriptLine(
            "tool", plain_text(f"{item.get('name')}({item.get('arguments', '')})")
        )
    if item_type == "function_call_output":
        output = item.get("output")
        rendered = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
        return TranscriptLine("tool", plain_text(f"→ {rendered}"))
    return TranscriptLine(plain_text(str(item_type)), "")


_REACTION = re.compile(r"^reacted (?P<emoji>.+) to an earlier message$")
_LABELS = {
    "form submitted:": "Form:",
    "order from catalog": "Order from catalog",
    "order:": "Order:",
}
_EVENTS = (
    "removed a reaction",
    "deleted a message",
    "edited a message",
    "allowed the business to call",
    "declined calls",
    "answered the request to call",
    "changed their WhatsApp number",
    "their WhatsApp identity changed",
    "WhatsApp system message",
)


def readable_placeholder(what: str) -> str | None:
    """How a person reads the bracketed line the webhooks write for a reaction, a
    deletion, an edit, an order or a form (`reacted 👍 to an earlier message` →
    `👍 reaction`); None for one not of these."""
    reaction = _REACTION.match(what)
    if reaction:
        return f"{reaction['emoji']} reaction"
    for start, label in _LABELS.items():
        if what.startswith(start):
            return plain_text(label + what.removeprefix(start))
    if what.startswith(_EVENTS):
        return plain_text(what[:1].upper() + what[1:])
    return None


def one_line(text: str, limit: int = 160) -> str:
    """`text` on one terminal line: whitespace collapsed, cut at `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def content_text(content: Any) -> str:
    """User content is a string or a list of parts; assistant content is `output_text` parts."""
    if isinstance(content, str):
        return plain_text(content)
    if not isinstance(content, list):
        return ""
    texts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "refusal":
            texts.append(str(part.get("refusal", "")))
        elif part.get("type") in ("input_image", "input_file"):
            texts.append(f"[{part['type'].removeprefix('input_')}]")
    return plain_text("\n".join(texts))
