"""The server-rendered pages: sign-in, builders, a builder's sessions, a conversation
(with its live updates and earlier pages) and the "Try it" chat."""

from __future__ import annotations

import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from db.dashboard_queries import (
    SESSION_SORTS,
    conversation_origin,
    items_page,
    mark_seen,
    replies_of_turns,
    sessions_page,
    turns_around,
    unplaced_failures,
    web_session_id,
)
from webhooks.dashboard.attachments import shown_items
from webhooks.dashboard.auth import (
    checked_form,
    principal,
    principal_for_token,
    sign_in,
    sign_out,
)
from webhooks.dashboard.chat import CONVERSATION_ID
from webhooks.dashboard.entries import Entry, build_entries
from webhooks.dashboard.lookups import (
    SEQUENCE_MAX,
    int_param,
    page_param,
    search_param,
    show_param,
    visible_builder,
    visible_session,
)
from webhooks.dashboard.previews import previews
from webhooks.dashboard.rendering import page
from webhooks.dashboard.reply_window_panel import window_context
from webhooks.dashboard.takeover_view import takeover_view
from webhooks.dashboard.throttle import WrongTokens

SESSIONS_PER_PAGE = 25
ITEMS_PER_PAGE = 50


async def login_form(request: Request) -> Response:
    return page(request, "login.html", {"error": None, "next": "/"})


async def login(request: Request) -> Response:
    wrong_tokens: WrongTokens = request.app.state.wrong_tokens
    wrong_tokens.check(request)
    form = await checked_form(request)
    token = str(form.get("token", "")).strip()
    who = await principal_for_token(token, request=request) if token else None
    if who is None:
        wrong_tokens.record(request)
        return page(
            request,
            "login.html",
            {"error": "That token is not valid.", "next": "/"},
            status_code=401,
        )
    await sign_in(request, who)
    return RedirectResponse(_local(str(form.get("next") or "/")), 303)


def _local(target: str) -> str:
    """Only a path on this site: `//host` and `/\\host` would leave it."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/"


async def logout(request: Request) -> Response:
    await checked_form(request)
    await sign_out(request)
    return RedirectResponse("/login", 303)


async def home(request: Request) -> Response:
    who = principal(request)
    return RedirectResponse("/builders" if who.is_admin else f"/builders/{who.builder_id}", 303)


async def sessions(request: Request) -> Response:
    builder = await visible_builder(request)
    sort = request.query_params.get("sort", "last_activity")
    if sort not in SESSION_SORTS:
        raise HTTPException(400, f"sort must be one of {', '.join(SESSION_SORTS)}")
    descending = request.query_params.get("order", "desc") != "asc"
    search = search_param(request)
    show = show_param(request)
    number = page_param(request, per_page=SESSIONS_PER_PAGE)
    async with request.app.state.runtime.sessionmaker() as db:
        listing = await sessions_page(
            builder.id,
            search=search,
            show=show,
            sort=sort,
            descending=descending,
            page=number,
            per_page=SESSIONS_PER_PAGE,
            db=db,
        )
        shown = await previews(listing.sessions, db=db)
    return page(
        request,
        "sessions.html",
        {
            "builder": builder,
            "listing": listing,
            "previews": shown,
            "sort": sort,
            "descending": descending,
            "q": search,
            "show": show,
        },
    )


async def conversation(request: Request) -> Response:
    session = await visible_session(request)
    entries, more_before = await _entries(request, session.id, before=None)
    async with request.app.state.runtime.sessionmaker.begin() as db:
        unplaced = await unplaced_failures(session.id, db=db)
        window = await window_context(session.id, session.builder_id, db=db)
        origin = await conversation_origin(session.id, db=db)
        await mark_seen(session.id, db=db)
        takeover = await takeover_view(
            session.id, paused=session.status == "paused", archive=not more_before, db=db
        )
    return page(
        request,
        "conversation.html",
        {
            "session": session,
            "entries": entries,
            "more_before": more_before,
            "unplaced": unplaced,
            "origin": origin,
            "takeover": takeover,
            "notice": request.query_params.get("notice"),
            **window,
        },
    )


async def conversation_entries(request: Request) -> Response:
    """A fragment of bubbles: the page of entries before `before` (earlier pages)."""
    session = await visible_session(request, counts=False)
    before = int_param(request, "before", default=None, low=0, high=SEQUENCE_MAX)
    entries, more = await _entries(request, session.id, before=before)
    response = page(request, "_entries.html", {"entries": entries, "session": session})
    response.headers["X-More"] = "1" if more else "0"
    if entries:
        response.headers["X-First-Sequence"] = str(entries[0].sequence)
        response.headers["X-Last-Sequence"] = str(entries[-1].sequence)
    return response


async def _entries(
    request: Request, session_id: uuid.UUID, *, before: int | None
) -> tuple[list[Entry], bool]:
    """The latest page of entries before `before` (or of all), and whether earlier ones exist."""
    async with request.app.state.runtime.sessionmaker() as db:
        items, more = await items_page(session_id, before=before, limit=ITEMS_PER_PAGE, db=db)
        if not items:
            return [], more
        turns = await turns_around(session_id, items[0].sequence, items[-1].sequence, db=db)
        replies = await replies_of_turns([turn.id for turn in turns], db=db)
        shown = await shown_items(items, turns, db=db)
    return build_entries(items, turns, replies, shown), more


async def try_it(request: Request) -> Response:
    """The chat page; `?conversation=web-…` continues that web chat, its history shown."""
    builder = await visible_builder(request)
    conversation_id = request.query_params.get("conversation", "")
    if conversation_id and not CONVERSATION_ID.match(conversation_id):
        raise HTTPException(400, "conversation must be 1-120 letters, digits and . _ : -")
    entries: list[Entry] = []
    session_id: uuid.UUID | None = None
    if conversation_id:
        async with request.app.state.runtime.sessionmaker() as db:
            session_id = await web_session_id(builder.id, conversation_id, db=db)
    if session_id is not None:
        entries = (await _entries(request, session_id, before=None))[0]
    return page(
        request,
        "chat.html",
        {"builder": builder, "conversation_id": conversation_id, "entries": entries},
    )
