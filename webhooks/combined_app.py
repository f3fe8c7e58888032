"""The webhook app and the dashboard in one process, on one address: what `wabot serve`,
`make demo` and the tests run. Deployments run them apart (Procfile `web` and
`dashboard`), so the process providers call carries no agent code."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from db.core.settings import Settings, get_settings
from webhooks.app import create_app
from webhooks.dashboard.dashboard_app import create_dashboard, dashboard_resources


def create_combined_app(settings: Settings | None = None) -> Starlette:
    """The webhook app, handing whatever none of its routes matches to the dashboard (a
    webhook path with the wrong method still answers 405, not the dashboard's 401); its
    health and metrics are the process's. The webhook routes run as they run alone."""
    settings = settings or get_settings()
    app = create_app(settings)
    dashboard = create_dashboard(settings)
    webhook_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The dashboard's first: the webhook app's lifespan freezes what is loaded by then.
        async with dashboard_resources(dashboard, settings), webhook_lifespan(app):
            yield

    app.router.lifespan_context = lifespan
    app.router.default = dashboard
    return app


app = create_combined_app()
