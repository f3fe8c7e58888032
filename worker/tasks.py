"""Celery tasks: thin wrappers that run the plain async functions on the worker's loop."""

from __future__ import annotations

import concurrent.futures
import gc
import threading
from functools import partial
from typing import Any

from celery import Task
from celery.signals import worker_ready, worker_shutdown, worker_shutting_down

from db.core.log_context import log_context
from db.core.settings import get_settings
from worker.celery_app import PROCESS_INBOUND_TASK, app, enqueue_inbound
from worker.conversation.inbound import RetryLater, process_inbound
from worker.process.event_loop import stop_worker_loop, worker_loop
from worker.process.metrics_server import serve_metrics
from worker.process.runtime import close_runtime, current_runtime
from worker.process.sweeper import sweep_forever


async def _process(inbound_id: int, task_id: str | None) -> None:
    """Bound here, in the coroutine's own asyncio task, the ids stay with this task's
    lines while other conversations run on the same loop."""
    with log_context(task_id=task_id):
        await process_inbound(inbound_id, runtime=await current_runtime())


@app.task(name=PROCESS_INBOUND_TASK, bind=True, max_retries=None)
def process_inbound_task(self: Task, inbound_id: int) -> None:
    """Answer inbound message `inbound_id`; safe to run twice (the turn is idempotent)."""
    try:
        worker_loop().run(_process(inbound_id, self.request.id))
    except RetryLater as later:
        raise self.retry(countdown=later.countdown) from later
    except concurrent.futures.CancelledError as stopped:
        # Shutting down past the grace period: hand the turn back (it resumes idempotently).
        raise self.retry(countdown=0) from stopped


async def _sweep() -> None:
    await sweep_forever(await current_runtime(), partial(enqueue_inbound, app))


YOUNG_COLLECTION_THRESHOLD = 10_000
"""Objects allocated (less those freed) between the collector's young passes; Python's
default is 700. A turn allocates thousands of objects that reference counting frees,
and at 700 a young pass ran every other turn: 0.5 ms of a turn's ~14 ms of CPU (gc
callbacks, turns in one process), 0.05 ms at this threshold."""


@worker_ready.connect
def _freeze_start_up_objects(**_: Any) -> None:
    """Everything loaded by now lives as long as the process: keep it out of the
    collector's full passes, which otherwise stall every conversation's loop for tens
    of milliseconds. Young passes come less often (`YOUNG_COLLECTION_THRESHOLD`)."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    """Each worker process sweeps for stranded inbox messages (see worker.process.sweeper)."""
    worker_loop().spawn(_sweep())


@worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    """With WORKER_METRICS_PORT set, this worker process serves its own metrics."""
    settings = get_settings()
    if settings.worker_metrics_port is not None and settings.metrics_token is not None:
        serve_metrics(settings.worker_metrics_port, settings.metrics_token)


@worker_shutting_down.connect
def _bound_the_shutdown(**_: Any) -> None:
    """SIGTERM: running turns get WORKER_SHUTDOWN_GRACE_SECONDS to finish, then are
    cancelled and handed back to the broker for another worker."""
    grace = threading.Timer(
        get_settings().worker_shutdown_grace_seconds, worker_loop().cancel_running
    )
    grace.daemon = True
    grace.start()


@worker_shutdown.connect
def _close_worker_loop(**_: Any) -> None:
    stop_worker_loop(close_runtime())
