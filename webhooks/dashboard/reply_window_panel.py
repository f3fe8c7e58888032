"""The 24-hour window on a conversation page (`_window.html`) and the approved templates
its operator may send when it is closed (`_templates.html`)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from db.reply_window import reply_window
from db.takeover import reply_route
from db.templates import placeholders, templates_of


def time_left(left: timedelta) -> str:
    """`23 h 5 min`, `12 min`: how long the window stays open, to the minute."""
    minutes = int(left.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


async def window_context(
    session_id: uuid.UUID, builder_id: uuid.UUID, *, db: AsyncSession
) -> dict[str, Any]:
    """What the partials show: `window` (None for a conversation not on WhatsApp), its
    `window_open` and `window_left`, and the builder's approved `templates` of the
    conversation's provider, each with its `variables` (placeholder names)."""
    window = await reply_window(session_id, db=db)
    route = await reply_route(session_id, db=db)
    templates = []
    if route is not None:
        for template in await templates_of(
            builder_id, provider=route[0].provider, approved_only=True, db=db
        ):
            templates.append({"row": template, "variables": placeholders(template.body)})
    return {
        "window": window,
        "window_open": window is None or window.is_open(),
        "window_left": time_left(window.left()) if window is not None else "",
        "templates": templates,
    }
