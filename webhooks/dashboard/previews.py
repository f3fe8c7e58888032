"""The inbox's previews of each conversation's last message, in the words its conversation
page shows that message (`entries.entry_summary` of the entry `entries.build_entries`
makes of it), not the words stored for the model: `📷 Photo: …`, not `[photo, …]`."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.dashboard_queries import SessionSummary, turns_owning
from webhooks.dashboard.attachments import shown_of, shown_sources
from webhooks.dashboard.entries import build_entries, entry_summary

PREVIEW_CHARS = 80


@dataclass(frozen=True)
class Preview:
    role: str
    """`user` or `assistant`."""
    text: str


async def previews(
    sessions: Sequence[SessionSummary], *, db: AsyncSession
) -> dict[uuid.UUID, Preview]:
    """Each session's preview, by id; what users sent is read with its turn, inbox row and
    files (three queries for a page of sessions, none when only the bot spoke last)."""
    items = [session.last_message for session in sessions if session.last_message is not None]
    sent = [item for item in items if item.item_data.get("role") == "user"]
    turns = await turns_owning(sent, db=db)
    messages, files = await shown_sources(sent, turns, db=db) if sent else ([], [])
    found = {}
    for item in items:
        own = [turn for turn in turns if turn.session_id == item.session_id]
        for entry in build_entries([item], own, {}, shown_of([item], own, messages, files)):
            text = entry_summary(entry)
            if len(text) > PREVIEW_CHARS:
                text = text[: PREVIEW_CHARS - 1] + "…"
            found[item.session_id] = Preview(entry.kind, text)
    return found
