"""The JSON API (described at `/api/openapi.json`): a builder's sessions with their
`item_count`, and a session's items by keyset pages on `sequence`, each with the files,
order or location the dashboard shows for it (`attachments`)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from db.core.logging_setup import mask_numbers
from db.dashboard_queries import (
    MAX_PAGE,
    SESSION_SORTS,
    SessionSummary,
    items_page,
    sessions_page,
    turns_around,
)
from webhooks.dashboard.attachments import shown_items
from webhooks.dashboard.entries import item_json
from webhooks.dashboard.lookups import (
    SEQUENCE_MAX,
    int_param,
    page_param,
    search_param,
    show_param,
    visible_builder,
    visible_session,
)
from webhooks.dashboard.openapi import OPENAPI
from webhooks.dashboard.previews import Preview, previews


def session_json(session: SessionSummary, preview: Preview | None = None) -> dict[str, object]:
    return {
        "id": str(session.id),
        "builder_id": str(session.builder_id),
        "platform": session.platform,
        "user": mask_numbers(session.external_id),
        "display_name": session.display_name,
        "item_count": session.item_count,
        "last_activity": session.last_activity.isoformat(),
        "status": session.status,
        "preview": preview.text if preview is not None else "",
        "waiting": session.waiting,
        "unread": session.unread,
        "attention": list(session.attention),
    }


async def builder_sessions(request: Request) -> Response:
    builder = await visible_builder(request)
    sort = request.query_params.get("sort", "last_activity")
    if sort not in SESSION_SORTS:
        raise HTTPException(400, f"sort must be one of {', '.join(SESSION_SORTS)}")
    show = show_param(request)
    per_page = int_param(request, "per_page", default=50, low=1, high=MAX_PAGE)
    assert per_page is not None
    page = page_param(request, per_page=per_page)
    async with request.app.state.runtime.sessionmaker() as db:
        listing = await sessions_page(
            builder.id,
            search=search_param(request),
            show=show,
            sort=sort,
            descending=request.query_params.get("order", "desc") != "asc",
            page=page,
            per_page=per_page,
            db=db,
        )
        shown = await previews(listing.sessions, db=db)
    return JSONResponse(
        {
            "sessions": [
                session_json(session, shown.get(session.id)) for session in listing.sessions
            ],
            "page": listing.page,
            "per_page": listing.per_page,
            "total": listing.total,
            "total_exact": listing.exact,
        }
    )


async def session_items(request: Request) -> Response:
    """Items with `sequence > after`, oldest first; `next_after` continues the walk."""
    session = await visible_session(request)
    after = int_param(request, "after", default=-1, low=-1, high=SEQUENCE_MAX)
    limit = int_param(request, "limit", default=100, low=1, high=MAX_PAGE)
    assert limit is not None
    async with request.app.state.runtime.sessionmaker() as db:
        items, more = await items_page(session.id, after=after, limit=limit, db=db)
        turns = (
            await turns_around(session.id, items[0].sequence, items[-1].sequence, db=db)
            if items
            else []
        )
        shown = await shown_items(items, turns, db=db)
        preview = (await previews([session], db=db)).get(session.id)
    return JSONResponse(
        {
            "session": session_json(session, preview),
            "items": [item_json(item, shown.get(item.sequence)) for item in items],
            "has_more": more,
            "next_after": items[-1].sequence if items else after,
        }
    )


async def openapi(_request: Request) -> Response:
    return JSONResponse(OPENAPI)
