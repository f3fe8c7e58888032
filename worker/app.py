"""The Celery application: broker, reliability settings and the task names others send.

The webhook receiver imports this module to enqueue by name; it never imports the tasks
(and so never the agent).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from celery import Celery
from celery.signals import setup_logging
from kombu.exceptions import KombuError

from db.logs import configure_logging
from db.settings import Settings, get_settings

PROCESS_INBOUND_TASK = "wabot.inbound.process"

logger = logging.getLogger(__name__)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """Redis: redeliver unacknowledged tasks after the visibility timeout (a dead worker's
    task comes back), checked often enough that recovery is not held up by the sweep."""
    if settings.celery_broker_url is None:
        folder = str(settings.broker_folder)
        return {"data_folder_in": folder, "data_folder_out": folder, "polling_interval": 0.1}
    return {
        "visibility_timeout": settings.celery_visibility_timeout,
        "unacked_restore_interval": max(1, min(10, settings.celery_visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
    }


def create_celery(settings: Settings) -> Celery:
    if settings.celery_broker_url is None:
        settings.broker_folder.mkdir(parents=True, exist_ok=True)
    app = Celery("wabot", broker=settings.resolved_broker_url, include=["worker.tasks"])
    app.conf.update(
        task_default_queue=settings.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        enable_utc=True,
    )
    return app


async def enqueue_inbound(celery: Celery, inbound_id: int) -> bool:
    """Publish the task for an inbox message; False when the broker is unreachable.

    The message is already committed to the inbox, so nothing is lost: the receiver
    still answers 200, and a sweep publishes it again later. Publishing runs in a
    thread because kombu's publish blocks.
    """
    try:
        await asyncio.to_thread(celery.send_task, PROCESS_INBOUND_TASK, args=[inbound_id])
    except (KombuError, OSError) as error:
        logger.warning("inbound %s recorded but not enqueued (broker: %s)", inbound_id, error)
        return False
    return True


@setup_logging.connect
def _configure_worker_logging(**_: Any) -> None:
    """Our format and redaction instead of Celery's default logging setup."""
    configure_logging(get_settings().log_level)


app = create_celery(get_settings())
