"""The dashboard served on its own (Procfile `dashboard`, compose's `dashboard` service,
`wabot serve --only dashboard`): its pages, JSON API and web chat, with health and its
own metrics beside them, in a process apart from the webhooks providers call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from db.core.logging_setup import configure_logging
from db.core.settings import Settings, get_settings
from webhooks import health
from webhooks.dashboard.dashboard_app import create_dashboard, dashboard_resources
from webhooks.metrics_endpoint import process_metrics


def create_dashboard_server(settings: Settings | None = None) -> Starlette:
    """Health and metrics answer outside the dashboard's sign-in (a probe or Prometheus
    carries no dashboard token); every other path is the dashboard's."""
    settings = settings or get_settings()
    configure_logging(settings)
    dashboard = create_dashboard(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with dashboard_resources(dashboard, settings):
            app.state.settings = settings
            app.state.engine = dashboard.state.runtime.engine
            app.state.celery = dashboard.state.celery
            yield

    app = Starlette(
        routes=[
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/readyz", health.readyz, methods=["GET"]),
            Route("/metrics", process_metrics, methods=["GET"]),
        ],
        exception_handlers=dict(health.DATABASE_DOWN),
        lifespan=lifespan,
    )
    app.router.default = dashboard
    return app


app = create_dashboard_server()
