"""Liveness and readiness probes for load balancers and orchestrators, and the answer
every request gets while the database is down; the webhook app and the dashboard serve
both."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

if TYPE_CHECKING:  # a type only: the provider webhooks import this module, not Celery
    from celery import Celery

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 3

DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    ConnectionError,
)
"""What a request meets while the database is down (the app answers 503)."""


async def database_unavailable(_request: Request, error: Exception) -> Response:
    """Providers retry on 5xx: answering 503 loses nothing while the database is down."""
    logger.error("database unavailable: %s", type(error).__name__)
    return PlainTextResponse("database unavailable, retry later", status_code=503)


DATABASE_DOWN = dict.fromkeys(DATABASE_ERRORS, database_unavailable)


async def healthz(_request: Request) -> Response:
    """The process is alive and serving; says nothing of its dependencies."""
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    """200 when both the database and the broker answer, else 503 naming the failure."""
    state = request.app.state
    checks = {"database": _database_ready(state.engine), "broker": _broker_ready(state.celery)}
    results = dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
    ready = all(result == "ok" for result in results.values())
    return JSONResponse(results, status_code=200 if ready else 503)


async def _database_ready(engine: AsyncEngine) -> str:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure means "not ready"; the reason is reported
        logger.warning("readiness: database unreachable: %s", error)
        return f"unreachable: {type(error).__name__}"
    return "ok"


async def _broker_ready(celery: Celery) -> str:
    def connect() -> None:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=PROBE_TIMEOUT_SECONDS)

    try:
        await run_in_threadpool(connect)
    except Exception as error:  # any failure means "not ready"; the reason is reported
        logger.warning("readiness: broker unreachable: %s", error)
        return f"unreachable: {type(error).__name__}"
    return "ok"
