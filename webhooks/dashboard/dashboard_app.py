"""The dashboard and its APIs as one Starlette app, and what it runs on.

Its own middleware (security headers, the signed session cookie, the body cap, then
`Guard`) wraps only these routes, so provider webhooks pay nothing for them, even where
one process serves both (`webhooks.combined_app`). `dashboard_resources` puts on its
state what the web chat and the operators' replies run on, as a worker's turns do: the
runtime (engine, OpenAI client, outbound channels) and a Celery app to hand messages
back to the workers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from db.core.settings import Settings
from webhooks.dashboard import (
    actions,
    api,
    chat,
    manage,
    operator_replies,
    page_updates,
    pages,
    served_media,
)
from webhooks.dashboard.auth import Guard, admin_key
from webhooks.dashboard.body_cap import DOCUMENT_UPLOAD_PATH, BodyCap
from webhooks.dashboard.rendering import HERE, error_response, http_error
from webhooks.dashboard.security_headers import SecurityHeaders
from webhooks.dashboard.throttle import WrongTokens
from webhooks.health import DATABASE_DOWN
from worker.celery_app import create_celery
from worker.process.runtime import create_runtime

logger = logging.getLogger(__name__)

COOKIE_NAME = "wabot_session"

ROUTES = [
    Route("/login", pages.login_form, methods=["GET"]),
    Route("/login", pages.login, methods=["POST"]),
    Route("/logout", pages.logout, methods=["POST"]),
    Route("/", pages.home, methods=["GET"]),
    Route("/builders", manage.builders_page, methods=["GET"]),
    Route("/builders", manage.create, methods=["POST"]),
    Route("/builders/{builder_id}", pages.sessions, methods=["GET"]),
    Route("/builders/{builder_id}/settings", manage.settings_page, methods=["GET"]),
    Route("/builders/{builder_id}/settings", manage.update, methods=["POST"]),
    Route("/builders/{builder_id}/delete", manage.delete, methods=["POST"]),
    Route("/builders/{builder_id}/numbers", manage.add_number, methods=["POST"]),
    Route(
        "/builders/{builder_id}/numbers/{channel_id}/remove",
        manage.remove_number,
        methods=["POST"],
    ),
    Route(DOCUMENT_UPLOAD_PATH, manage.upload_document, methods=["POST"]),
    Route("/builders/{builder_id}/documents/remove", manage.remove_document_form, methods=["POST"]),
    Route("/builders/{builder_id}/tokens", manage.add_token, methods=["POST"]),
    Route("/builders/{builder_id}/tokens/{token_id}/revoke", manage.revoke, methods=["POST"]),
    Route("/builders/{builder_id}/chat", pages.try_it, methods=["GET"]),
    Route("/sessions/{session_id}", pages.conversation, methods=["GET"]),
    Route("/sessions/{session_id}/entries", pages.conversation_entries, methods=["GET"]),
    Route("/sessions/{session_id}/updates", page_updates.conversation_updates, methods=["GET"]),
    Route("/sessions/{session_id}/pause", actions.pause, methods=["POST"]),
    Route("/sessions/{session_id}/resume", actions.resume, methods=["POST"]),
    Route("/sessions/{session_id}/reply", actions.reply, methods=["POST"]),
    Route("/sessions/{session_id}/clear", actions.clear, methods=["POST"]),
    Route("/sessions/{session_id}/template", actions.template, methods=["POST"]),
    Route("/sessions/{session_id}/turns/{turn_id}/retry", actions.retry, methods=["POST"]),
    Route("/media/{media_id}", served_media.media_file, methods=["GET"]),
    Route("/api/openapi.json", api.openapi, methods=["GET"]),
    Route("/api/builders/{builder_id}/sessions", api.builder_sessions, methods=["GET"]),
    Route("/api/sessions/{session_id}/items", api.session_items, methods=["GET"]),
    Route("/api/sessions/{session_id}/reply", operator_replies.api_reply, methods=["POST"]),
    Route("/api/sessions/{session_id}/template", operator_replies.api_template, methods=["POST"]),
    Route("/api/chat/{builder_id}", chat.chat, methods=["POST"]),
    Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
]


def create_dashboard(settings: Settings) -> Starlette:
    """The dashboard app, without its resources (`dashboard_resources` brings them)."""
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
        exception_handlers={**DATABASE_DOWN, HTTPException: http_error},
    )
    dashboard.state.settings = settings
    dashboard.state.chat_turns = set()
    dashboard.state.admin_key = admin_key(settings, secret)
    dashboard.state.wrong_tokens = WrongTokens(
        settings.auth_failures_per_minute, trust_proxy_headers=settings.trust_proxy_headers
    )
    return dashboard


@asynccontextmanager
async def dashboard_resources(dashboard: Starlette, settings: Settings) -> AsyncIterator[None]:
    """The dashboard's runtime and Celery app, for as long as it serves; at the end, web
    chat turns still running may finish (their history stays whole)."""
    runtime = create_runtime(settings)
    dashboard.state.runtime = runtime
    dashboard.state.celery = create_celery(settings)
    try:
        yield
    finally:
        running: set[asyncio.Task[None]] = dashboard.state.chat_turns
        if running:
            await asyncio.wait(running, timeout=settings.run_timeout_seconds)
        await runtime.aclose()
