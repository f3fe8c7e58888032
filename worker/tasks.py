"""Celery tasks: thin wrappers that run the plain async functions on the worker's loop."""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.signals import worker_shutdown

from worker.app import PROCESS_INBOUND_TASK, app
from worker.conversations import RetryLater, process_inbound
from worker.loop import stop_worker_loop, worker_loop
from worker.runtime import close_runtime, current_runtime


async def _process(inbound_id: int) -> None:
    await process_inbound(inbound_id, runtime=await current_runtime())


@app.task(name=PROCESS_INBOUND_TASK, bind=True, max_retries=None)
def process_inbound_task(self: Task, inbound_id: int) -> None:
    """Answer inbound message `inbound_id`; safe to run twice (the turn is idempotent)."""
    try:
        worker_loop().run(_process(inbound_id))
    except RetryLater as later:
        raise self.retry(countdown=later.countdown) from later


@worker_shutdown.connect
def _close_worker_loop(**_: Any) -> None:
    stop_worker_loop(close_runtime())
