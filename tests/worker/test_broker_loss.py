"""A worker that loses Redis while it holds unacknowledged tasks: acknowledging one and
closing its channel must neither raise (the worker exited, "Unrecoverable error") nor
drop the tasks, which stay in Redis's unacknowledged set for the visibility timeout to
bring back."""

from __future__ import annotations

import uuid

import redis
from kombu import Connection, Queue

import worker.celery_app  # noqa: F401  (its ack and close tolerate a lost connection)
from tests.services import REDIS_URL


def test_a_channel_closed_after_its_connection_keeps_its_unacknowledged_tasks() -> None:
    run = uuid.uuid4().hex
    keys = {
        "unacked_key": f"unacked-{run}",
        "unacked_index_key": f"unacked_index-{run}",
        "unacked_mutex_key": f"unacked_mutex-{run}",
    }
    queue = Queue(f"broker-loss-{run}")
    client = redis.Redis.from_url(REDIS_URL)
    try:
        with Connection(REDIS_URL, transport_options=keys) as connection:
            producer = connection.Producer()
            producer.publish({"inbound_id": 1}, routing_key=queue.name, declare=[queue])
            channel = connection.channel()
            message = channel.basic_get(queue.name, no_ack=False)
            assert message is not None
            channel.connection.client = None  # what a lost connection leaves the channel

            message.ack()  # a task that ended after the connection was lost
            channel.close()

        assert client.hexists(keys["unacked_key"], message.delivery_tag)
    finally:
        client.delete(*keys.values(), queue.name)
        client.close()
