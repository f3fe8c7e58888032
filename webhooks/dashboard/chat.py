"""`POST /api/chat/{builder_id}`: one message to the builder's agent on a web
conversation, answered as a `text/event-stream` of the run's events (`delta`,
`tool_call`, `tool_output`, then `done` or `error`), or as one JSON document with
`"stream": false`.

A conversation answers one message at a time: a second request while the first runs
gets 409 at once. The run does not depend on the listener: a client that disconnects
leaves the turn to finish and the history whole.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from db.lossless_json import plain_text
from webhooks.dashboard.auth import check_csrf_header
from webhooks.dashboard.lookups import visible_builder
from worker.conversation.lease import ConversationBusy
from worker.conversation.web_chat import (
    ChatEvent,
    ConversationPaused,
    chat_turn,
    take_conversation,
)

MAX_MESSAGE_CHARS = 8000
CONVERSATION_ID = re.compile(r"^[A-Za-z0-9._:-]{1,120}$")
_TERMINAL = ("done", "error")


async def chat(request: Request) -> Response:
    builder = await visible_builder(request)
    check_csrf_header(request)
    conversation_id, message, stream = await _read_request(request)
    runtime = request.app.state.runtime
    try:
        turn = await take_conversation(builder.id, conversation_id, runtime=runtime)
    except (ConversationBusy, ConversationPaused) as refused:
        raise HTTPException(409, str(refused)) from refused
    events: asyncio.Queue[ChatEvent] = asyncio.Queue()
    running = asyncio.create_task(chat_turn(turn, message, runtime=runtime, emit=events.put_nowait))
    background: set[asyncio.Task[None]] = request.app.state.chat_turns
    background.add(running)
    running.add_done_callback(background.discard)
    if stream:
        return StreamingResponse(
            _sse(events),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
    return await _collected(events, conversation_id, str(turn.session_id))


async def _read_request(request: Request) -> tuple[str, str, bool]:
    raw = await request.body()  # at most `body_cap.MAX_BODY_BYTES`
    try:
        body: Any = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "the body must be JSON") from None
    except RecursionError:
        raise HTTPException(400, "the body's JSON is nested too deeply") from None
    if not isinstance(body, dict):
        raise HTTPException(400, 'the body must be a JSON object {"conversation_id", "message"}')
    conversation_id, message = body.get("conversation_id"), body.get("message")
    if not isinstance(conversation_id, str) or not CONVERSATION_ID.match(conversation_id):
        raise HTTPException(
            400, "conversation_id must be 1-120 characters of letters, digits and . _ : -"
        )
    if not isinstance(message, str) or not message.strip():
        raise HTTPException(400, "message must be a non-empty string")
    if len(message) > MAX_MESSAGE_CHARS:
        raise HTTPException(413, f"message is longer than {MAX_MESSAGE_CHARS} characters")
    stream = body.get("stream", True)
    if not isinstance(stream, bool):
        raise HTTPException(400, "stream must be true or false")
    return conversation_id, plain_text(message), stream  # as the agent reads a WhatsApp text


async def _sse(events: asyncio.Queue[ChatEvent]) -> AsyncIterator[str]:
    while True:
        event = await events.get()
        yield f"event: {event.kind}\ndata: {json.dumps(event.data, ensure_ascii=False)}\n\n"
        if event.kind in _TERMINAL:
            return


async def _collected(
    events: asyncio.Queue[ChatEvent], conversation_id: str, session_id: str
) -> Response:
    tools: list[dict[str, Any]] = []
    while True:
        event = await events.get()
        if event.kind == "tool_call":
            tools.append({**event.data, "output": None})
        elif event.kind == "tool_output":
            for tool in tools:
                if tool["call_id"] == event.data["call_id"]:
                    tool["output"] = event.data["output"]
        elif event.kind == "error":
            return JSONResponse(
                {"error": event.data["message"], "session_id": session_id}, status_code=502
            )
        elif event.kind == "done":
            return JSONResponse(
                {
                    "conversation_id": conversation_id,
                    "session_id": session_id,
                    "reply": event.data["reply"],
                    "tool_calls": tools,
                }
            )
