"""The metrics of agent turns: turns by outcome and how long they take, the agent run's
time, sends by status and tokens per builder. A `wabot worker` process counts its
WhatsApp turns and, with WORKER_METRICS_PORT set, serves them (see
worker.process.metrics_server); the receiver counts its web chat turns (see
worker.conversation.web_chat) and serves them on its `/metrics`."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from agents.result import RunResultBase
from prometheus_client import Counter, Histogram

from db.sessions import LeaseLostError
from worker.channels.base import OutboundChannel, SendError, SentMessage
from worker.errors import PermanentTurnError

P = ParamSpec("P")
R = TypeVar("R", bound=RunResultBase)

REPLIED = "replied"
RECORDED = "recorded"
"""Values of the `outcome` label for a turn that ended well: it was answered, or it had
nothing to answer (reactions, edits, deletes, system messages) and was only recorded."""

WHATSAPP = "whatsapp"
WEB = "web"
"""Values of the `platform` label, as `sessions.platform` names them: a WhatsApp turn
(worker) or a web chat turn (receiver)."""

# Seconds: a quick answer to a turn that hits RUN_TIMEOUT_SECONDS and more.
BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0)

TURNS = Counter(
    "wabot_turns",
    "Turn attempts by platform and outcome: replied, recorded (nothing to answer;"
    " WhatsApp only), failed (for good; on WhatsApp the fallback was sent) or retried"
    " (WhatsApp only).",
    ["platform", "outcome"],
)
TURN_SECONDS = Histogram(
    "wabot_turn_seconds",
    "Wall time of one turn attempt: agent run and sends.",
    ["platform"],
    buckets=BUCKETS,
)
MODEL_SECONDS = Histogram(
    "wabot_model_run_seconds",
    "Wall time of one agent run: its model calls and tools.",
    ["platform"],
    buckets=BUCKETS,
)
SENDS = Counter(
    "wabot_sends", "Messages sent to users, by provider and status.", ["provider", "status"]
)
TOKENS = Counter(
    "wabot_model_tokens",
    "Model tokens used by builder, platform and direction (input, output).",
    ["builder", "platform", "direction"],
)


def observed_turn(
    run: Callable[P, Coroutine[Any, Any, str]],
) -> Callable[P, Coroutine[Any, Any, str]]:
    """`run` (one WhatsApp turn attempt, returning its outcome), timed and counted by
    how it ended."""

    @functools.wraps(run)
    async def observing(*args: P.args, **kwargs: P.kwargs) -> str:
        with _observed(WHATSAPP, _whatsapp_failure) as ended:
            ended.outcome = await run(*args, **kwargs)
        return ended.outcome

    return observing


@dataclass
class TurnEnd:
    """How a turn that raised nothing ended (`REPLIED` unless it says otherwise)."""

    outcome: str = REPLIED


def observed_chat_turn() -> AbstractContextManager[TurnEnd]:
    """The block (one web chat turn), timed and counted: replied, or failed whatever went
    wrong, since nothing retries a web chat turn (the builder sends again)."""
    return _observed(WEB, lambda _error: "failed")


def _whatsapp_failure(error: Exception) -> str | None:
    """A permanent failure ends the turn; anything else is retried. A lost lease is not
    an outcome: the conversation's new holder finishes the turn."""
    if isinstance(error, LeaseLostError):
        return None
    return "failed" if isinstance(error, PermanentTurnError) else "retried"


@contextmanager
def _observed(platform: str, failure: Callable[[Exception], str | None]) -> Iterator[TurnEnd]:
    """Time the block as a `platform` turn; count it as the block's `TurnEnd` says, or
    as `failure` names what it raised (None: not counted)."""
    started = time.perf_counter()
    ended = TurnEnd()
    try:
        yield ended
    except Exception as error:
        outcome = failure(error)
        if outcome is not None:
            TURNS.labels(platform, outcome).inc()
        raise
    finally:
        TURN_SECONDS.labels(platform).observe(time.perf_counter() - started)
    TURNS.labels(platform, ended.outcome).inc()


async def observed_run(run: Awaitable[R], *, builder_id: uuid.UUID, platform: str) -> R:
    """An agent run (a streamed one awaited to its end): its result, its time observed,
    its tokens counted under `platform` (`WHATSAPP` or `WEB`)."""
    started = time.perf_counter()
    try:
        result = await run
    finally:
        MODEL_SECONDS.labels(platform).observe(time.perf_counter() - started)
    usage = result.context_wrapper.usage
    TOKENS.labels(str(builder_id), platform, "input").inc(usage.input_tokens)
    TOKENS.labels(str(builder_id), platform, "output").inc(usage.output_tokens)
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
