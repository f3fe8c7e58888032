"""The webhook app, what providers call (Procfile `web`): the provider webhooks (verify,
record, enqueue, answer; no model calls, no sends), the voice notes we send (served at
signed links to Twilio), health and metrics. It carries no
agent code: one engine, the inbox writer, the channels' secrets and the Celery app it
enqueues through. The dashboard is an app of its own (`webhooks.dashboard.server`);
`webhooks.combined_app` serves both from one process."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from db.core.logging_setup import configure_logging
from db.core.settings import Settings, get_settings
from db.engine import create_engine, create_sessionmaker
from db.media_links import REPLY_MEDIA_PATH
from db.statements import StatementConnections
from webhooks import health
from webhooks.inbox_writer import InboxWriter
from webhooks.providers import meta, twilio
from webhooks.providers.channel_secrets import ChannelSecrets
from webhooks.receiver_metrics import counted, metrics
from webhooks.reply_media import reply_media
from worker.celery_app import create_celery


def create_app(settings: Settings | None = None) -> Starlette:
    """The webhook app on `settings` (else the environment's)."""
    settings = settings or get_settings()
    # Now, not at start-up: uvicorn imports the app before it logs its first line.
    configure_logging(settings)

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
        # Everything loaded so far lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall every request ~60 ms each second.
        gc.freeze()
        try:
            yield
        finally:
            await app.state.inbox_writer.aclose()
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
            Route(f"{REPLY_MEDIA_PATH}{{media_id}}", reply_media, methods=["GET"]),
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers=dict(health.DATABASE_DOWN),
        lifespan=lifespan,
    )
    return app


app = create_app()
