"""Path parameters turned into rows the principal may see (else 404), and query
parameters read with clear 400s."""

from __future__ import annotations

import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request

from db.builders import get_builder
from db.dashboard_queries import SESSION_FILTERS, SessionSummary, session_with_status
from db.models import Builder
from webhooks.dashboard.auth import principal, require_builder


def path_uuid(request: Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise HTTPException(404, f"no such {name.removesuffix('_id')}") from None


async def visible_builder(request: Request) -> Builder:
    builder_id = path_uuid(request, "builder_id")
    require_builder(request, builder_id)
    async with request.app.state.runtime.sessionmaker() as db:
        builder = await get_builder(builder_id, db=db)
    if builder is None:
        raise HTTPException(404, "no such builder")
    return builder


async def visible_session(request: Request, *, counts: bool = True) -> SessionSummary:
    """The session named in the path, if it belongs to a builder the principal sees
    (`counts`: see `session_with_status`)."""
    session_id = path_uuid(request, "session_id")
    async with request.app.state.runtime.sessionmaker() as db:
        found = await session_with_status(session_id, counts=counts, db=db)
    if found is None or not principal(request).may_see(found.builder_id):
        raise HTTPException(404, "no such session")
    return found


BIGINT_MAX = 2**63 - 1
"""Integer parameters end up in SQL, where Postgres refuses anything larger."""
SEQUENCE_MAX = 2**31 - 1
"""`session_items.sequence` is an INTEGER: `after`/`before` beyond it are refused too."""


def int_param(
    request: Request, name: str, *, default: int | None, low: int = 0, high: int = BIGINT_MAX
) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer, got {raw[:20]!r}") from None
    if not low <= value <= high:
        raise HTTPException(400, f"{name} must be between {low} and {high}")
    return value


def page_param(request: Request, *, per_page: int) -> int:
    """`page`, small enough that its offset (`(page - 1) × per_page`) is a bigint."""
    page = int_param(request, "page", default=1, low=1, high=BIGINT_MAX // per_page)
    assert page is not None
    return page


def search_param(request: Request) -> str:
    """`q`, up to 100 characters; nobody searches for a NUL, and Postgres refuses one."""
    search = request.query_params.get("q", "")[:100]
    if "\x00" in search:
        raise HTTPException(400, "q must not contain NUL (U+0000)")
    return search


def show_param(request: Request) -> str:
    """`show`: one of `SESSION_FILTERS`, or empty for every session."""
    show = request.query_params.get("show", "")
    if show and show not in SESSION_FILTERS:
        raise HTTPException(400, f"show must be one of {', '.join(SESSION_FILTERS)}")
    return show
