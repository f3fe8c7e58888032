"""Jinja2 templates and how errors look: JSON under `/api/`, pages elsewhere (a 401
page is the sign-in form)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from db.core.clock import as_utc
from db.core.logging_setup import mask_numbers
from db.media import clock, readable_size
from webhooks.dashboard.auth import csrf_token

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")


def _when(moment: datetime | None) -> str:
    return as_utc(moment).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def web_chat_title(started_at: datetime, first_words: str = "") -> str:
    """`Web chat · Tue 3 Dec 14:05 · first words…`: a web chat's id is a random uuid."""
    moment = as_utc(started_at)
    title = f"Web chat · {moment:%a} {moment.day} {moment:%b %H:%M}"
    return f"{title} · {first_words}" if first_words else title


templates.env.filters["when"] = _when
templates.env.globals["web_chat_title"] = web_chat_title
templates.env.filters["masked"] = mask_numbers
templates.env.filters["size"] = readable_size
templates.env.filters["clock"] = clock


def page(
    request: HTTPConnection, name: str, context: dict[str, Any], *, status_code: int = 200
) -> Response:
    """Render `name` with what every page needs (the principal, the CSRF token)."""
    assert isinstance(request, Request)
    return templates.TemplateResponse(
        request, name, _with_basics(request, context), status_code=status_code
    )


def fragment(request: HTTPConnection, name: str, context: dict[str, Any]) -> str:
    """`name` rendered as `page` renders it, as text (for a JSON answer)."""
    return templates.get_template(name).render(
        {"request": request, **_with_basics(request, context)}
    )


def _with_basics(request: HTTPConnection, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "principal": getattr(request.state, "principal", None),
        "csrf_token": csrf_token(request),
        **context,
    }


def is_api(request: HTTPConnection) -> bool:
    return request.url.path.startswith("/api/")


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    return error_response(request, error)


def error_response(request: HTTPConnection, error: HTTPException) -> Response:
    if is_api(request):
        return JSONResponse(
            {"error": error.detail}, status_code=error.status_code, headers=error.headers
        )
    if error.status_code == 401:
        response = page(
            request, "login.html", {"error": None, "next": request.url.path}, status_code=401
        )
    else:
        response = page(
            request,
            "error.html",
            {"status": error.status_code, "detail": error.detail},
            status_code=error.status_code,
        )
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response
