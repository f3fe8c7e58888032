"""The web chat: a builder tries their agent in the browser, on a session of its own
(`(builder, "web", conversation_id)`) that the dashboard shows like any other.

The run streams (`Runner.run_streamed`) and every event goes to `emit` as it comes. The
run is independent of whoever listens: a browser that goes away mid-stream does not
stop it, so the history ends with the whole answer, not half a turn. Turns of one
conversation are serialized by the same lease as the worker's, and counted in the same
metrics (`platform="web"`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai
from agents import AgentsException
from agents.memory import SessionSettings
from agents.stream_events import StreamEvent
from openai.types.responses import ResponseTextDeltaEvent

from db.agent_session import DatabaseSession
from db.builders import get_builder
from db.core.log_context import log_context
from db.models import AgentSessionRow
from db.sessions import get_or_create_session
from worker.conversation.agent_run import history_window, run_agent
from worker.conversation.lease import ConversationLease, take_lease
from worker.errors import PermanentTurnError, TransientTurnError
from worker.process.runtime import Runtime
from worker.process.turn_metrics import observed_chat_turn

logger = logging.getLogger(__name__)

WEB_PLATFORM = "web"


class ConversationPaused(Exception):
    """An operator paused the conversation; the bot does not answer until resumed."""


@dataclass(frozen=True)
class ChatEvent:
    """`delta` (text as it arrives), `tool_call`, `tool_output`, `done` or `error`."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatTurn:
    """A conversation taken for one turn: its session and the lease that holds it."""

    builder_id: uuid.UUID
    session_id: uuid.UUID
    lease: ConversationLease


async def take_conversation(
    builder_id: uuid.UUID, conversation_id: str, *, runtime: Runtime
) -> ChatTurn:
    """The conversation's session, created on first use, leased for one turn;
    `ConversationPaused` or `ConversationBusy` when it cannot be answered now."""
    async with runtime.sessionmaker.begin() as db:
        session_id = await get_or_create_session(builder_id, WEB_PLATFORM, conversation_id, db=db)
        session = await db.get(AgentSessionRow, session_id)
        assert session is not None
        if session.paused_at is not None:
            raise ConversationPaused(f"conversation {conversation_id!r} is paused")
        busy = f"conversation {conversation_id!r} is answering another message"
        lease = await take_lease(session_id, runtime=runtime, db=db, busy=busy)
    return ChatTurn(builder_id=builder_id, session_id=session_id, lease=lease)


async def chat_turn(
    turn: ChatTurn, message: str, *, runtime: Runtime, emit: Callable[[ChatEvent], None]
) -> None:
    """Run the agent on `message`, emitting its events; always ends with `done` or
    `error`, sent once the turn is counted in the metrics and its lease given back, so
    whoever heard it end finds it counted and may send the next message at once."""
    last = ChatEvent("error", {"message": "the run was interrupted"})
    with log_context(session_id=turn.session_id):
        try:
            async with turn.lease:
                try:
                    with observed_chat_turn():
                        last = await _run(turn, message, runtime=runtime, emit=emit)
                except Exception as error:  # the listener is told what went wrong, whatever
                    failure = _what_failed(error)
                    logger.warning(
                        "web chat on session %s failed: %s", turn.session_id, type(failure).__name__
                    )
                    last = ChatEvent("error", {"message": _explain(failure)})
        finally:
            emit(last)


async def _run(
    turn: ChatTurn, message: str, *, runtime: Runtime, emit: Callable[[ChatEvent], None]
) -> ChatEvent:
    """Stream the run's events to `emit`; returns the `done` event, for the caller to
    send once the turn is counted."""
    async with runtime.sessionmaker() as db:
        builder = await get_builder(turn.builder_id, db=db)
    if builder is None:
        raise LookupError("the builder was removed")
    session = DatabaseSession(
        turn.session_id,
        engine=runtime.engine,
        session_settings=SessionSettings(limit=history_window(builder, runtime.settings) or None),
        fencing_token=turn.lease.token,
        statements=runtime.statements,
        window_from_user_message=True,
    )

    def translated(event: StreamEvent) -> None:
        chat_event = _translate(event)
        if chat_event is not None:
            emit(chat_event)

    reply = await run_agent(
        builder, session, message, runtime=runtime, platform=WEB_PLATFORM, on_event=translated
    )
    return ChatEvent("done", {"session_id": str(turn.session_id), "reply": reply.as_read})


def _translate(event: Any) -> ChatEvent | None:
    if event.type == "raw_response_event" and isinstance(event.data, ResponseTextDeltaEvent):
        return ChatEvent("delta", {"text": event.data.delta})
    if event.type != "run_item_stream_event":
        return None
    raw = event.item.raw_item
    if event.name == "tool_called":
        return ChatEvent(
            "tool_call",
            {
                "name": getattr(raw, "name", None),
                "arguments": getattr(raw, "arguments", None),
                "call_id": getattr(raw, "call_id", None),
            },
        )
    if event.name == "tool_output":
        call_id = raw.get("call_id") if isinstance(raw, dict) else getattr(raw, "call_id", None)
        return ChatEvent("tool_output", {"call_id": call_id, "output": str(event.item.output)})
    return None


def _what_failed(error: Exception) -> BaseException:
    """The run's own failure under the turn error `run_agent` made of it, else `error`."""
    if isinstance(error, TransientTurnError | PermanentTurnError) and error.__cause__:
        return error.__cause__
    return error


def _explain(error: BaseException) -> str:
    """What the builder sees: enough to act on, nothing internal."""
    if isinstance(error, TimeoutError):
        return "the agent run took longer than RUN_TIMEOUT_SECONDS"
    if isinstance(error, openai.APIStatusError):
        return f"the model API answered {error.status_code}"
    if isinstance(error, openai.APIConnectionError):
        return "the model API is unreachable"
    if isinstance(error, AgentsException):
        return f"{type(error).__name__}: {error}"
    return f"unexpected error ({type(error).__name__})"
