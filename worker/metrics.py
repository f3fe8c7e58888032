"""The worker's metrics: turns by outcome and how long they take, the agent run's time,
sends by status and tokens per builder. Each `wabot worker` process counts its own and,
with WORKER_METRICS_PORT set, serves them (see worker.metrics_server)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from agents import RunResult
from prometheus_client import Counter, Histogram

from db.conversations import LeaseLostError
from worker.channels.base import OutboundChannel, SendError, SentMessage
from worker.turn_errors import PermanentTurnError

P = ParamSpec("P")
T = TypeVar("T")

# Seconds: a quick answer to a turn that hits RUN_TIMEOUT_SECONDS and more.
BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0)

TURNS = Counter(
    "wabot_turns",
    "Turn attempts by outcome: replied, failed (for good, fallback sent) or retried.",
    ["outcome"],
)
TURN_SECONDS = Histogram(
    "wabot_turn_seconds", "Wall time of one turn attempt: agent run and sends.", buckets=BUCKETS
)
MODEL_SECONDS = Histogram(
    "wabot_model_run_seconds",
    "Wall time of one agent run: its model calls and tools.",
    buckets=BUCKETS,
)
SENDS = Counter(
    "wabot_sends", "Messages sent to users, by provider and status.", ["provider", "status"]
)
TOKENS = Counter(
    "wabot_model_tokens",
    "Model tokens used by builder and direction (input, output).",
    ["builder", "direction"],
)


def observed_turn(
    run: Callable[P, Coroutine[Any, Any, None]],
) -> Callable[P, Coroutine[Any, Any, None]]:
    """`run` (one turn attempt), timed and counted by how it ended. A lost lease is not
    an outcome: the conversation's new holder finishes the turn."""

    @functools.wraps(run)
    async def observing(*args: P.args, **kwargs: P.kwargs) -> None:
        started = time.perf_counter()
        try:
            await run(*args, **kwargs)
        except LeaseLostError:
            raise
        except PermanentTurnError:
            TURNS.labels("failed").inc()
            raise
        except Exception:
            TURNS.labels("retried").inc()
            raise
        finally:
            TURN_SECONDS.observe(time.perf_counter() - started)
        TURNS.labels("replied").inc()

    return observing


async def observed_run(run: Awaitable[RunResult], *, builder_id: uuid.UUID) -> RunResult:
    """The agent run's result, its time observed and its tokens counted to the builder."""
    started = time.perf_counter()
    try:
        result = await run
    finally:
        MODEL_SECONDS.observe(time.perf_counter() - started)
    usage = result.context_wrapper.usage
    TOKENS.labels(str(builder_id), "input").inc(usage.input_tokens)
    TOKENS.labels(str(builder_id), "output").inc(usage.output_tokens)
    return result


def counted_send(
    send: Callable[..., Coroutine[Any, Any, SentMessage]],
) -> Callable[..., Coroutine[Any, Any, SentMessage]]:
    """`send(channel, ...)`, counted as sent or failed (after its own retries)."""

    @functools.wraps(send)
    async def counting(channel: OutboundChannel, **kwargs: Any) -> SentMessage:
        try:
            sent = await send(channel, **kwargs)
        except SendError:
            SENDS.labels(channel.provider, "failed").inc()
            raise
        SENDS.labels(channel.provider, "sent").inc()
        return sent

    return counting
