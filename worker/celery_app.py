"""The Celery application: broker, reliability settings and the task names others send.

The webhook receiver imports this module to enqueue by name; it never imports the tasks
(and so never the agent): this module imports only `db`, as pyproject.toml's import
contracts check.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from amqp.exceptions import AMQPError, MessageNacked
from celery import Celery
from celery.signals import celeryd_after_setup, setup_logging
from kombu.exceptions import ChannelError, KombuError
from kombu.transport import filesystem
from kombu.transport import redis as redis_transport
from kombu.utils.json import dumps, loads
from kombu.utils.url import maybe_sanitize_url
from redis.exceptions import RedisError

from db.core.logging_setup import configure_logging
from db.core.settings import Settings, get_settings

PROCESS_INBOUND_TASK = "wabot.inbound.process"
PUBLISH_ATTEMPTS = 2
PUBLISH_DEADLINE_SECONDS = 10.0
"""However the broker misbehaves (a RabbitMQ blocking publishers in a memory or disk
alarm, a network that drops packets), the publishing of one batch gives up by then."""
BROKER_ERRORS = (KombuError, OSError, RedisError, AMQPError, MessageNacked)
EMBEDDED_TRANSPORT = "worker.celery_app:EmbeddedBrokerTransport"

logger = logging.getLogger(__name__)


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    """How we use each broker (see README, "Which broker").

    RabbitMQ: publisher confirms, so a publish returns once the broker has taken the
    message (written it, as it is persistent) and one it refused or lost raises; a dead
    worker's unacknowledged task comes back as soon as its connection closes. Redis:
    redeliver unacknowledged tasks after the visibility timeout (a dead worker's task
    comes back), checked often enough that recovery is not held up by the sweep.
    """
    if settings.celery_broker_url is None:
        folder = settings.broker_folder
        return {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            # kombu's default is `control/` in the working directory (its routing tables)
            "control_folder": str(folder / "control"),
            "polling_interval": 0.1,
        }
    # Reaching the broker to publish: a couple of quick tries, not kombu's default
    # minutes; an unpublished message waits in the inbox for the sweeper.
    reaching = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
    if settings.broker_is_rabbitmq:
        return {**reaching, "confirm_publish": True}
    return {
        **reaching,
        "visibility_timeout": settings.celery_visibility_timeout,
        "unacked_restore_interval": max(1, min(10, settings.celery_visibility_timeout // 4)),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
    }


def message_file_name(queue: str, published_at: float) -> str:
    """A message file's name: consumers take files in name order, so the time is
    zero-padded (kombu's bare number sorted 9999 after 10000)."""
    return f"{round(published_at * 1000):015d}_{uuid.uuid4()}.{queue}.msg"


class _WholeFilesChannel(filesystem.Channel):
    """kombu's file-system channel with its races closed (kombu #1551). kombu creates a
    message file, then writes it, and a consumer takes whatever file it lists: another
    process read one empty, and the worker died of the JSON error; two consumers could
    take the same file. Here a message file appears whole (written aside, then renamed
    into the folder), a consumer takes one by renaming it (only one rename succeeds),
    and an exchange's routing table is never seen half made. A file that still cannot
    be read is dropped with a warning: its message is in the inbox, and the sweeper
    enqueues it again."""

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        # Where a message is written before it appears, and where a consumer takes it to.
        self._staging = Path(self.data_folder_out) / "staging"
        self._taken = Path(self.data_folder_in) / "taken"
        self._staging.mkdir(exist_ok=True)
        self._taken.mkdir(exist_ok=True)

    # The stubs' own signatures, which differ from kombu's virtual channel's as these do.
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        folder = Path(self.data_folder_out)
        name = message_file_name(queue, monotonic())
        staged = self._staging / name
        try:
            staged.write_text(dumps(payload))
            os.replace(staged, folder / name)
        except OSError as error:
            raise ChannelError(f"cannot add {name} to {folder}") from error

    def _get(self, queue: str) -> dict[str, Any]:  # type: ignore[override]
        folder = Path(self.data_folder_in)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != f"{queue}.msg":
                continue
            taken = self._taken / name
            try:
                os.rename(folder / name, taken)
            except FileNotFoundError:  # another consumer took it first
                continue
            except OSError as error:
                raise ChannelError(f"cannot take {name} from {folder}") from error
            try:
                text = taken.read_text()
                taken.unlink()
                message: dict[str, Any] = loads(text)
                return message
            except (OSError, ValueError) as error:
                logger.warning(
                    "embedded broker: dropped unreadable message file %s (%s); the sweeper "
                    "enqueues its inbox message again",
                    name,
                    type(error).__name__,
                )
        raise Empty()

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str | None, queue: str) -> None:
        """kombu creates a routing table by truncating and then locking it: a reader
        between the two read nothing. The table is made whole first, then kombu adds
        the binding under its lock."""
        table: Path = self._exchange_file(exchange)  # type: ignore[attr-defined]  # not in the stubs
        if not table.exists():
            self.control_folder.mkdir(exist_ok=True)
            staged = self.control_folder / f"{uuid.uuid4()}.staged"
            staged.write_text("[]")
            try:
                os.link(staged, table)
            except FileExistsError:  # another process made it meanwhile
                pass
            finally:
                staged.unlink()
        super()._queue_bind(exchange, routing_key, pattern, queue)


class EmbeddedBrokerTransport(filesystem.Transport):
    """The embedded broker (no CELERY_BROKER_URL): kombu's file system transport, with
    whole files (`_WholeFilesChannel`)."""

    Channel = _WholeFilesChannel


_kombu_restore_unacked = redis_transport.QoS.restore_unacked
_kombu_ack = redis_transport.QoS.ack


def _released(qos: redis_transport.QoS) -> bool:
    """Whether the channel's connection to Redis was already released (Redis went away):
    kombu 5.7 then builds a client from settings that are gone, and the AttributeError
    is none of the errors Celery ignores there, so the worker exited ("Unrecoverable
    error"). What it meant to tell Redis is left undone: the tasks stay in Redis's
    unacknowledged set, and any worker restores them after the visibility timeout, as
    when a worker dies (a task run again finds its message answered)."""
    transport = qos.channel.connection
    return transport is None or transport.client is None


def _restore_unacked_unless_released(self: redis_transport.QoS, client: Any = None) -> Any:
    """kombu's, on the channel closed as its connection is lost (see `_released`)."""
    delivered = self._delivered
    if client is None and delivered is not None and _released(self):
        logger.warning(
            "broker connection lost: %d unacknowledged task(s) come back after the"
            " visibility timeout",
            len(delivered),
        )
        delivered.clear()
        return None
    return _kombu_restore_unacked(self, client)


def _ack_unless_released(self: redis_transport.QoS, delivery_tag: str) -> None:
    """kombu's, for a task that ended after its connection was lost (see `_released`)."""
    if _released(self):
        logger.warning("broker connection lost: a finished task comes back after the timeout")
        return
    _kombu_ack(self, delivery_tag)


redis_transport.QoS.restore_unacked = _restore_unacked_unless_released  # type: ignore[method-assign]
redis_transport.QoS.ack = _ack_unless_released  # type: ignore[method-assign]


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
        broker_transport=EMBEDDED_TRANSPORT if settings.celery_broker_url is None else None,
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # After a reconnect Celery would lower the prefetch count, then raise it back from
        # the task threads on the consumer's own connection, racing the consumer for its
        # socket: on RabbitMQ a worker hung for good. Prefetch stays as set.
        worker_enable_prefetch_count_reduction=False,
        enable_utc=True,
    )
    return app


async def enqueue_inbound(celery: Celery, inbound_ids: Sequence[int]) -> bool:
    """Publish the tasks for inbox messages; False when the broker is unreachable.

    The messages are already committed to the inbox, so nothing is lost: the receiver
    still answers 200, and a sweep publishes them again later. Publishing runs in a
    thread because kombu's publish blocks; past PUBLISH_DEADLINE_SECONDS we stop waiting
    for it (a late publish only repeats a task, which turns tolerate).
    """
    if not inbound_ids:
        return True
    failure: object = None
    try:
        async with asyncio.timeout(PUBLISH_DEADLINE_SECONDS):
            for attempt in range(PUBLISH_ATTEMPTS):
                try:
                    await asyncio.to_thread(_publish_inbound, celery, inbound_ids)
                    return True
                except BROKER_ERRORS as error:
                    failure = error
                    if attempt + 1 < PUBLISH_ATTEMPTS:
                        await asyncio.sleep(0.2)
    except TimeoutError:
        failure = f"no answer within {PUBLISH_DEADLINE_SECONDS:g}s"
    logger.warning(
        "%d inbound message(s) recorded but not enqueued (broker: %s); the sweeper will",
        len(inbound_ids),
        failure,
    )
    return False


def _publish_inbound(celery: Celery, inbound_ids: Sequence[int]) -> None:
    """One broker round trip for all of them: kombu's publish batch pipelines the pushes
    on Redis; Celery's own `as_task_v2` builds each task message. Publishing straight to
    the queue (default exchange) skips the per-message routing lookups of `send_task`,
    which cost ten times as much CPU as the message itself.

    RabbitMQ drops a message sent to a queue nobody has declared yet (no worker has
    started), so the queue is declared first, as the workers declare it: once per
    broker connection (kombu remembers), not per publish."""
    queue = celery.amqp.queues[celery.conf.task_default_queue]
    with celery.producer_or_acquire() as producer:
        producer.maybe_declare(queue)
        with producer.batch():
            for inbound_id in inbound_ids:
                task_id = str(uuid.uuid4())
                message = celery.amqp.as_task_v2(
                    task_id,
                    PROCESS_INBOUND_TASK,
                    args=(inbound_id,),
                    argsrepr=f"[{inbound_id}]",
                    kwargsrepr="{}",
                    ignore_result=True,
                )
                producer.publish(
                    message.body,
                    exchange="",
                    routing_key=queue.name,
                    serializer="json",
                    headers=message.headers,
                    retry=False,
                    declare=[],
                    **message.properties,
                )


@setup_logging.connect
def _configure_worker_logging(**_: Any) -> None:
    """Our format and redaction instead of Celery's default logging setup."""
    configure_logging(get_settings(), _celery_task_id)


def _celery_task_id(record: logging.LogRecord) -> bool:
    """Celery's own task lines (received, succeeded, retry) name their task in `data`:
    give them the `task_id` field our lines carry."""
    task = record.__dict__.get("data")
    if isinstance(task, dict) and "id" in task:
        record.task_id = task["id"]
    return True


@celeryd_after_setup.connect
def _no_banner_in_json(instance: Any, **_: Any) -> None:
    """Celery prints its start-up banner straight to stdout, a dozen lines no JSON log
    reader can parse: with LOG_FORMAT=json one line says what it would have."""
    settings = get_settings()
    if settings.log_format != "json":
        return
    instance.quiet = True
    logger.info(
        "%s starting: queue(s) %s, %s threads, broker %s",
        instance.hostname,
        ", ".join(instance.app.amqp.queues.consume_from),
        instance.concurrency,
        maybe_sanitize_url(settings.resolved_broker_url),
    )


app = create_celery(get_settings())
# At import as well: `celery worker` warns (e.g. about running as root) before it sends
# setup_logging, and those lines should come out in our format too.
configure_logging(get_settings(), _celery_task_id)
