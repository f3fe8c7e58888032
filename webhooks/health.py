"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import asyncio
import logging

from celery import Celery
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 3


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
