"""`GET /metrics` on the webhook app and on the dashboard: this process's Prometheus
metrics, to the holder of `METRICS_TOKEN` only; without one set they are off (404)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from db.core.metrics_auth import metrics_authorized


def authorize_scrape(request: Request) -> None:
    """Raise 404 while metrics are off, 401 without the right bearer token."""
    token = request.app.state.settings.metrics_token
    if token is None:
        raise HTTPException(404, "metrics are off; set METRICS_TOKEN to serve them")
    if not metrics_authorized(request.headers.get("authorization"), token):
        raise HTTPException(
            401, "send Authorization: Bearer <METRICS_TOKEN>", {"WWW-Authenticate": "Bearer"}
        )


def exposition() -> Response:
    """Every metric this process registered, as they stand."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def process_metrics(request: Request) -> Response:
    """The dashboard's: its web chat turns, operators' replies and refused tokens."""
    authorize_scrape(request)
    return exposition()
