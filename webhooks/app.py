"""The ASGI app: the provider webhooks (verify, record, enqueue, answer; no model calls,
no sends), health and metrics, and, mounted beside them, the dashboard with its JSON and
chat APIs."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from db.core.logging_setup import configure_logging
from db.core.settings import Settings, get_settings
from db.engine import create_engine, create_sessionmaker
from db.statements import StatementConnections
from webhooks import health
from webhooks.dashboard.dashboard_app import create_dashboard, finish_chat_turns
from webhooks.inbox_writer import InboxWriter
from webhooks.providers import meta, twilio
from webhooks.providers.channel_secrets import ChannelSecrets
from webhooks.receiver_metrics import DATABASE_ERRORS, counted, metrics
from worker.celery_app import create_celery
from worker.process.runtime import create_runtime

logger = logging.getLogger(__name__)


async def database_unavailable(_request: Request, error: Exception) -> Response:
    """Providers retry on 5xx: answering 503 loses nothing while the database is down."""
    logger.error("database unavailable: %s", type(error).__name__)
    return PlainTextResponse("database unavailable, retry later", status_code=503)


DATABASE_DOWN = dict.fromkeys(DATABASE_ERRORS, database_unavailable)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    # Now, not at start-up: uvicorn imports the app before it logs its first line.
    configure_logging(settings)
    dashboard = create_dashboard(settings, exception_handlers=DATABASE_DOWN)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = create_engine(
            settings.resolved_database_url,
            pool_size=settings.database_pool_size,
            pooler=settings.database_pooler,
        )
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.channel_secrets = ChannelSecrets(
            app.state.sessionmaker, settings.credentials_cipher
        )
        app.state.celery = create_celery(settings)
        app.state.inbox_writer = InboxWriter(
            app.state.sessionmaker,
            app.state.celery,
            statements=StatementConnections(
                settings.resolved_database_url, size=1, pooler=settings.database_pooler
            )
            if engine.dialect.name == "postgresql"
            else None,
        )
        # The dashboard runs agents (web chat) and sends (human replies) like a worker.
        runtime = create_runtime(settings)
        dashboard.state.settings = settings
        dashboard.state.runtime = runtime
        dashboard.state.celery = app.state.celery
        # Everything loaded so far lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall every request ~60 ms each second.
        gc.freeze()
        try:
            yield
        finally:
            await finish_chat_turns(dashboard, grace_seconds=settings.run_timeout_seconds)
            await app.state.inbox_writer.aclose()
            await runtime.aclose()
            await engine.dispose()

    app = Starlette(
        routes=[
            Route(
                "/webhooks/twilio", counted("twilio", "message", twilio.inbound), methods=["POST"]
            ),
            Route(
                "/webhooks/twilio/status",
                counted("twilio", "status", twilio.status_callback),
                methods=["POST"],
            ),
            Route("/webhooks/meta", meta.verify_subscription, methods=["GET"]),
            Route(
                "/webhooks/meta",
                counted("meta", "notification", meta.notification),
                methods=["POST"],
            ),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers=dict(DATABASE_DOWN),
        lifespan=lifespan,
    )
    # Whatever no webhook route matches goes to the dashboard (a webhook path with the
    # wrong method still answers 405, not the dashboard's 401).
    app.router.default = dashboard
    return app


app = create_app()
