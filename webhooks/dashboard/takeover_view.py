"""What the conversation page shows of a take-over, beside the history: messages not yet
in it (at their arrival, with the "N waiting" count), what resuming does by default, and
the transcript a cleared memory archived."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from db.core.clock import as_utc
from db.models import SessionItem
from db.takeover import archived_items, human_replied_since_pause, unstored_messages
from webhooks.dashboard.entries import Entry, build_entries, waiting_entry


@dataclass(frozen=True)
class Cleared:
    """The items one clearing of the memory archived."""

    cleared_at: datetime
    entries: list[Entry]


@dataclass(frozen=True)
class TakeoverView:
    waiting: list[Entry]
    """Messages not yet in the history, in arrival order."""
    resume_answers_waiting: bool
    """The resume form's default: answer what waits (no human has replied since the
    pause), else only what comes next."""
    archive: list[Cleared] = field(default_factory=list)

    @property
    def waiting_count(self) -> int:
        return waiting_count(self.waiting)


def waiting_count(entries: list[Entry]) -> int:
    """The messages still to be answered (not those failed before a turn stored them)."""
    return sum(1 for entry in entries if entry.failure is None)


async def unstored_entries(session_id: uuid.UUID, *, paused: bool, db: AsyncSession) -> list[Entry]:
    return [
        waiting_entry(message, paused=paused)
        for message in await unstored_messages(session_id, db=db)
    ]


async def takeover_view(
    session_id: uuid.UUID, *, paused: bool, archive: bool, db: AsyncSession
) -> TakeoverView:
    """`archive`: read the archived transcript too (the page shows it above its oldest
    page of the history)."""
    cleared: dict[datetime, list[SessionItem]] = {}
    if archive:
        for item in await archived_items(session_id, db=db):
            cleared.setdefault(as_utc(item.cleared_at), []).append(
                SessionItem(
                    session_id=item.session_id,
                    sequence=item.sequence,
                    item_data=item.item_data,
                    created_at=item.created_at,
                )
            )
    return TakeoverView(
        waiting=await unstored_entries(session_id, paused=paused, db=db),
        resume_answers_waiting=not await human_replied_since_pause(session_id, db=db),
        archive=[Cleared(when, build_entries(items, [], {})) for when, items in cleared.items()],
    )
