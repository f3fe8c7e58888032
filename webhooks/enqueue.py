"""Handing a recorded inbound message to the workers, by task name."""

from __future__ import annotations

import logging

from celery import Celery
from kombu.exceptions import KombuError
from starlette.concurrency import run_in_threadpool

from worker.app import PROCESS_INBOUND_TASK

logger = logging.getLogger(__name__)


async def enqueue_inbound(celery: Celery, inbound_id: int) -> bool:
    """Publish the task; False when the broker is unreachable.

    The message is already committed to the inbox, so the webhook still answers 200:
    the conversation's next task (or a sweep) picks it up. Publishing runs in a thread
    because kombu's publish blocks.
    """
    try:
        await run_in_threadpool(celery.send_task, PROCESS_INBOUND_TASK, args=[inbound_id])
    except (KombuError, OSError) as error:
        logger.warning("inbound %s recorded but not enqueued (broker: %s)", inbound_id, error)
        return False
    return True
