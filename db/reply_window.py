"""WhatsApp's 24-hour window: a free-form reply reaches the user only within 24 hours of
their last message; after that only an approved template does (Meta error 131047, Twilio
63016). One computation, used by the dashboard and by the human reply."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ScalarSelect, SQLColumnExpression, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.core.clock import as_utc
from db.models import InboundMessage

WINDOW = timedelta(hours=24)
CLOSED_REASON = (
    "the 24-hour window is closed: WhatsApp takes a free-form reply only within 24 hours "
    "of the user's last message; send an approved template instead"
)


@dataclass(frozen=True)
class ReplyWindow:
    """When the user last wrote, and so until when a free-form reply reaches them."""

    last_message_at: datetime
    closes_at: datetime

    def is_open(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) < self.closes_at

    def left(self, now: datetime | None = None) -> timedelta:
        """Time until it closes; zero once closed."""
        return max(self.closes_at - (now or datetime.now(UTC)), timedelta(0))


def last_user_message_at(
    session_id: uuid.UUID | SQLColumnExpression[uuid.UUID],
) -> ScalarSelect[datetime]:
    """When the user last wrote through a WhatsApp number, as a scalar subquery (of a
    conversation's id, or of a column for a correlated one): where its window starts."""
    return (
        select(func.max(InboundMessage.received_at))
        .where(InboundMessage.session_id == session_id, InboundMessage.channel_id.is_not(None))
        .scalar_subquery()
    )


async def reply_window(session_id: uuid.UUID, *, db: AsyncSession) -> ReplyWindow | None:
    """The window of a conversation; None when no WhatsApp number routes it (a web chat,
    or one whose number was removed): no window applies, a reply is only stored."""
    last = await db.scalar(select(last_user_message_at(session_id)))
    if last is None:
        return None
    last = as_utc(last)
    return ReplyWindow(last_message_at=last, closes_at=last + WINDOW)
