"""The webhook app's metrics: provider webhooks by outcome, and the inbox's depth and age
read at scrape time. `GET /metrics` serves them (and this process's others) to the holder
of `METRICS_TOKEN`; without one it is off (404)."""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from db.backlog import inbox_waiting
from webhooks.health import DATABASE_ERRORS
from webhooks.metrics_endpoint import authorize_scrape, exposition

logger = logging.getLogger(__name__)

Endpoint = Callable[[Request], Awaitable[Response]]

WEBHOOKS = Counter(
    "wabot_webhooks",
    "Provider webhook requests, by provider, webhook and outcome.",
    ["provider", "webhook", "outcome"],
)
INBOX_WAITING = Gauge("wabot_inbox_waiting_messages", "Inbound messages pending or being answered.")
INBOX_OLDEST_AGE = Gauge(
    "wabot_inbox_oldest_waiting_age_seconds",
    "Age of the oldest inbound message pending or being answered; 0 when none waits.",
)

REFUSALS = {400: "bad_request", 403: "bad_signature", 413: "too_large", 422: "unstorable"}
DUPLICATE = "duplicate"


def counted(provider: str, webhook: str, endpoint: Endpoint) -> Endpoint:
    """`endpoint`, counting each request's outcome under `provider` and `webhook`:
    `accepted` unless the endpoint marked it a duplicate, or how it was refused."""
    outcomes = functools.partial(WEBHOOKS.labels, provider, webhook)

    @functools.wraps(endpoint)
    async def counting(request: Request) -> Response:
        try:
            response = await endpoint(request)
        except HTTPException as error:
            outcomes(REFUSALS.get(error.status_code, "refused")).inc()
            raise
        except DATABASE_ERRORS:
            outcomes("db_unavailable").inc()
            raise
        except Exception:
            outcomes("error").inc()
            raise
        outcomes(getattr(request.state, "webhook_outcome", "accepted")).inc()
        return response

    return counting


def mark_duplicate(request: Request) -> None:
    """The request only redelivered what the inbox already holds."""
    request.state.webhook_outcome = DUPLICATE


async def metrics(request: Request) -> Response:
    """Prometheus exposition for this receiver process, inbox gauges fresh."""
    authorize_scrape(request)
    await _read_inbox(request)
    return exposition()


async def _read_inbox(request: Request) -> None:
    """Set the inbox gauges; NaN while the database is down, so the counters (which say
    how many webhooks it turned away) are still scraped."""
    try:
        async with request.app.state.sessionmaker() as db:
            waiting = await inbox_waiting(db=db)
    except DATABASE_ERRORS as error:
        logger.warning("metrics: inbox not read (%s)", type(error).__name__)
        INBOX_WAITING.set(math.nan)
        INBOX_OLDEST_AGE.set(math.nan)
        return
    INBOX_WAITING.set(waiting.count)
    age = (datetime.now(UTC) - waiting.oldest).total_seconds() if waiting.oldest else 0.0
    INBOX_OLDEST_AGE.set(max(0.0, age))
