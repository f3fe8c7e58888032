"""An open conversation page's live updates: every two seconds, one request that costs
one database statement (`db.live_updates.live_update`), answered with the page's new
entries and the messages still waiting as HTML fragments, in JSON (`conversation.js`)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from db.dashboard_queries import latest_replies, session_summary
from db.live_updates import live_update
from webhooks.dashboard.attachments import shown_of
from webhooks.dashboard.auth import Unauthenticated, asker
from webhooks.dashboard.entries import build_entries, waiting_entry
from webhooks.dashboard.lookups import SEQUENCE_MAX, int_param, path_uuid
from webhooks.dashboard.pages import ITEMS_PER_PAGE
from webhooks.dashboard.rendering import fragment
from webhooks.dashboard.takeover_view import waiting_count


async def conversation_updates(request: Request) -> Response:
    """A live update of an open conversation page, as JSON: the entries after `after` (the
    page's newest item) and the messages still waiting, as HTML fragments, with how many
    wait and whether more entries follow. One statement (`live_update`), which also
    checks a cookie's sign-in (`auth.LIVE_UPDATES`) and marks new items as seen."""
    session_id = path_uuid(request, "session_id")
    after = int_param(request, "after", default=-1, low=-1, high=SEQUENCE_MAX)
    assert after is not None
    async with request.app.state.runtime.autocommit_sessionmaker.begin() as db:
        found = await live_update(
            session_id, asker=asker(request), after=after, limit=ITEMS_PER_PAGE, db=db
        )
    if found is None:
        raise Unauthenticated("sign in or send Authorization: Bearer")
    if found.session is None:
        raise HTTPException(404, "no such session")
    session = session_summary(found.session, found.latest_status)
    shown = shown_of(found.items, found.turns, found.messages, found.files)
    entries = build_entries(found.items, found.turns, latest_replies(found.replies), shown)
    paused = found.session.paused_at is not None
    waiting = [waiting_entry(message, paused=paused) for message in found.waiting]
    return JSONResponse(
        {
            "entries": fragment(request, "_entries.html", {"entries": entries, "session": session}),
            "waiting": fragment(request, "_waiting.html", {"waiting": waiting}),
            "waiting_count": waiting_count(waiting),
            "more": found.more,
        }
    )
