"""The dashboard and its APIs as one Starlette app, mounted under the receiver's routes.

Its own middleware (security headers, the signed session cookie, the body cap, then
`Guard`) wraps only these routes, so provider webhooks pay nothing for them. The
receiver's lifespan puts the shared `runtime`, `settings` and `celery` on this app's
state.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ExceptionHandler

from db.core.settings import Settings
from webhooks.dashboard import actions, api, chat, pages
from webhooks.dashboard.auth import Guard, admin_key
from webhooks.dashboard.body_cap import BodyCap
from webhooks.dashboard.rendering import HERE, error_response, http_error
from webhooks.dashboard.security_headers import SecurityHeaders
from webhooks.dashboard.throttle import WrongTokens

logger = logging.getLogger(__name__)

COOKIE_NAME = "wabot_session"

ROUTES = [
    Route("/login", pages.login_form, methods=["GET"]),
    Route("/login", pages.login, methods=["POST"]),
    Route("/logout", pages.logout, methods=["POST"]),
    Route("/", pages.home, methods=["GET"]),
    Route("/builders", pages.builders, methods=["GET"]),
    Route("/builders/{builder_id}", pages.sessions, methods=["GET"]),
    Route("/builders/{builder_id}/chat", pages.try_it, methods=["GET"]),
    Route("/sessions/{session_id}", pages.conversation, methods=["GET"]),
    Route("/sessions/{session_id}/entries", pages.conversation_entries, methods=["GET"]),
    Route("/sessions/{session_id}/pause", actions.pause, methods=["POST"]),
    Route("/sessions/{session_id}/resume", actions.resume, methods=["POST"]),
    Route("/sessions/{session_id}/reply", actions.reply, methods=["POST"]),
    Route("/sessions/{session_id}/clear", actions.clear, methods=["POST"]),
    Route("/sessions/{session_id}/turns/{turn_id}/retry", actions.retry, methods=["POST"]),
    Route("/api/openapi.json", api.openapi, methods=["GET"]),
    Route("/api/builders/{builder_id}/sessions", api.builder_sessions, methods=["GET"]),
    Route("/api/sessions/{session_id}/items", api.session_items, methods=["GET"]),
    Route("/api/chat/{builder_id}", chat.chat, methods=["POST"]),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]


def create_dashboard(
    settings: Settings, *, exception_handlers: Mapping[Any, ExceptionHandler]
) -> Starlette:
    """The dashboard app; `exception_handlers` adds the receiver's (database down → 503)."""
    secret = settings.session_secret.get_secret_value() if settings.session_secret else None
    if secret is None:
        logger.info("SESSION_SECRET is not set: sign-ins last until this process restarts")
        secret = secrets.token_urlsafe(32)
    dashboard = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie=COOKIE_NAME,
                max_age=settings.session_max_age_seconds,
                same_site="lax",
                https_only=settings.cookie_secure,
            ),
            Middleware(BodyCap, deny=error_response),
            Middleware(Guard, deny=error_response),
        ],
        exception_handlers={**exception_handlers, HTTPException: http_error},
    )
    dashboard.state.chat_turns = set()
    dashboard.state.admin_key = admin_key(settings, secret)
    dashboard.state.wrong_tokens = WrongTokens(
        settings.auth_failures_per_minute, trust_proxy_headers=settings.trust_proxy_headers
    )
    return dashboard


async def finish_chat_turns(dashboard: Starlette, *, grace_seconds: float) -> None:
    """At shutdown, let web chat turns still running finish (their history stays whole)."""
    running: set[asyncio.Task[None]] = dashboard.state.chat_turns
    if running:
        await asyncio.wait(running, timeout=grace_seconds)
