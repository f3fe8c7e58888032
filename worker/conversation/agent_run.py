"""Running the builder's agent on a conversation: the one place that builds the agent,
its context and run configuration, bounds the run by RUN_TIMEOUT_SECONDS and says how
it failed (worth another attempt, or over for good). A WhatsApp turn runs it plain, a
web chat turn streamed; both read and save the history through the session they pass.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TypedDict

import openai
from agents import (
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputGuardrailTripwireTriggered,
    RunConfig,
    Runner,
    RunResultStreaming,
    UserError,
)
from agents.items import TResponseInputItem
from agents.memory import SessionInputCallback
from agents.result import RunResultBase
from agents.stream_events import StreamEvent

from db.agent_session import DatabaseSession
from db.core.settings import Settings
from db.models import Builder
from db.turns import RunStats
from worker.agent import plain_copies
from worker.agent.builder_agent import MAX_TURNS, TurnContext, build_agent
from worker.agent.choices import Reply
from worker.channels.base import retry_after_seconds
from worker.errors import PermanentTurnError, TransientTurnError
from worker.media.model_input import media_filter
from worker.process.runtime import Runtime
from worker.process.turn_metrics import observed_run

plain_copies.install()

_PERMANENT_RUN_ERRORS = (
    MaxTurnsExceeded,
    ModelBehaviorError,
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    UserError,
)


class _RunOptions(TypedDict):
    """What a run takes beside the agent and its input, plain or streamed."""

    session: DatabaseSession
    context: TurnContext
    max_turns: int
    run_config: RunConfig


async def run_agent(
    builder: Builder,
    session: DatabaseSession,
    run_input: str | list[TResponseInputItem],
    *,
    runtime: Runtime,
    platform: str,
    user_name: str | None = None,
    view: SessionInputCallback | None = None,
    on_event: Callable[[StreamEvent], None] | None = None,
    on_stats: Callable[[RunStats], None] | None = None,
) -> Reply:
    """The agent's final answer to `run_input`, counted in the `platform`'s metrics. An
    answer with options (`reply_with_options`) is stored as the assistant message the
    user reads (its text with the options numbered) once the run has stored the call.

    `view` is what the model reads of the history and the new input (else the session's
    window and the new input: pass a session whose window starts at a user message,
    `window_from_user_message`); the photos it holds as references reach the model
    as their bytes in the turn they came, as a line of text after (`media_filter`);
    with `on_event` the run streams, and each of its events goes there as it comes;
    `on_stats` hears what a finished run cost (model, latency, tokens).
    Raises `TransientTurnError` (the run timed out, the model API may answer later) or
    `PermanentTurnError` (it refused, or the SDK gave up).
    """
    agent = build_agent(builder, runtime.model(builder.model))
    options = _RunOptions(
        session=session,
        context=TurnContext(
            builder.id,
            uuid.UUID(session.session_id),
            user_name=user_name,
            sessions=runtime.sessionmaker,
        ),
        max_turns=MAX_TURNS,
        run_config=RunConfig(
            session_input_callback=view,
            call_model_input_filter=media_filter(runtime.sessionmaker, runtime.media_store),
        ),
    )
    timeout = runtime.settings.run_timeout_seconds
    run: Awaitable[RunResultBase]
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            if on_event is None:
                run = Runner.run(agent, run_input, **options)
            else:
                run = _streamed(Runner.run_streamed(agent, run_input, **options), on_event)
            result = await observed_run(run, builder_id=builder.id, platform=platform)
    except TimeoutError as error:
        raise TransientTurnError(f"the agent run took longer than {timeout:g}s") from error
    except _PERMANENT_RUN_ERRORS as error:
        raise PermanentTurnError(f"{type(error).__name__}: {error}") from error
    except openai.APIStatusError as error:
        if error.status_code in (408, 409, 429) or error.status_code >= 500:
            raise TransientTurnError(
                f"model API {error.status_code}", retry_after=_retry_after(error.response.headers)
            ) from error
        raise PermanentTurnError(f"model API {error.status_code}: {error.message}") from error
    except openai.APIConnectionError as error:
        raise TransientTurnError(f"model API unreachable: {error}") from error
    if on_stats is not None:
        usage = result.context_wrapper.usage
        on_stats(
            RunStats(
                model=builder.model,
                latency_ms=round((time.monotonic() - started) * 1000),
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
            )
        )
    answer = str(result.final_output)
    offered = Reply.from_offer(answer)
    if offered is None:
        return Reply(answer)
    await session.add_items([{"role": "assistant", "content": offered.as_read}])
    return offered


async def _streamed(
    result: RunResultStreaming, on_event: Callable[[StreamEvent], None]
) -> RunResultStreaming:
    """The streamed run, awaited to its end with every event handed to `on_event`; a run
    whose wait is cancelled (the timeout) is stopped, not left running unheard."""
    try:
        async for event in result.stream_events():
            on_event(event)
    except asyncio.CancelledError:
        result.cancel()
        raise
    return result


def history_window(builder: Builder, settings: Settings) -> int:
    """How many of the latest items the model reads: the builder's own window, else
    `HISTORY_WINDOW` (0: the whole history)."""
    if builder.history_window is not None:
        return builder.history_window
    return settings.history_window


def history_from_a_user_message(
    history: list[TResponseInputItem], new_input: list[TResponseInputItem]
) -> list[TResponseInputItem]:
    """`history` started at a user message, then the new input: what a `view` over a
    whole history gives the model of its window (as `window_from_user_message` does for
    a session's own). A window (`HISTORY_WINDOW`) can begin inside an earlier turn, with
    a tool result whose call fell outside it, which the model API refuses."""
    start = next((n for n, item in enumerate(history) if item.get("role") == "user"), 0)
    return [*history[start:], *new_input]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """OpenAI's hint, from `retry-after-ms` or `retry-after` (seconds)."""
    milliseconds = retry_after_seconds(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    return retry_after_seconds(headers.get("retry-after"))
