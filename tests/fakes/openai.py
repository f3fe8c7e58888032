"""A fake OpenAI Responses API on loopback: the SDK's real `OpenAIResponsesModel` and
the real `openai` client talk to it over HTTP, so retries, timeouts and status codes
are exercised for real.

By default it behaves like a small tool-using model: asked about the time it calls
`current_time`, given the tool's output it answers with it, otherwise it echoes the
latest user message. Tests can replace `respond`, queue failures, or stall or fail a
given request (`faults`). With `"stream": true` it answers as the Responses API
streams: server-sent events, the text in word-sized deltas (`delta_delay_seconds` apart),
ending with `response.completed`.

`/v1/audio/transcriptions` records each upload (model, file name, type and bytes) and
answers `transcript` (after `transcription_delay_seconds`), or the next of
`transcription_failures` (HTTP statuses).
`/v1/audio/speech` records each request's JSON body and answers `speech` (real OGG/Opus
bytes, `tests/fixtures/media/spoken_reply.ogg`), or the next of `speech_failures`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from db.transcript import content_text

_ids = itertools.count(1)
SPOKEN_REPLY = (
    Path(__file__).resolve().parent.parent / "fixtures" / "media" / "spoken_reply.ogg"
).read_bytes()


def message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{next(_ids)}",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    number = next(_ids)
    return {
        "type": "function_call",
        "id": f"fc_{number}",
        "call_id": f"call_{number}",
        "name": name,
        "arguments": json.dumps(arguments),
        "status": "completed",
    }


def latest_user_text(request: dict[str, Any]) -> str:
    users = [item for item in request["input"] if item.get("role") == "user"]
    return content_text(users[-1]["content"]) if users else ""


def tool_using_model(request: dict[str, Any]) -> list[dict[str, Any]]:
    last = request["input"][-1]
    if last.get("type") == "function_call_output":
        return [message(f"The time is {last['output']}.")]
    text = latest_user_text(request)
    if "time" in text.lower():
        return [function_call("current_time", {"timezone": "UTC"})]
    return [message(f"You said: {text}")]


@dataclass
class Failure:
    status: int
    body: dict[str, Any] = field(default_factory=lambda: {"error": {"message": "fake failure"}})
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeOpenAI:
    respond: Callable[[dict[str, Any]], list[dict[str, Any]]] = tool_using_model
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    delay_seconds: float = 0.0
    faults: dict[int, Failure | float] = field(default_factory=dict)
    """By request number (1-based): a failure to answer, or seconds to stall first."""
    chaos: Callable[[], Failure | float | None] | None = None
    """Asked on every request: a failure to answer, seconds to stall first, or None."""
    delta_delay_seconds: float = 0.0
    """Streamed answers: the pause between two text deltas."""
    transcript: str = "I'd like to book a table for four"
    transcriptions: list[dict[str, Any]] = field(default_factory=list)
    """Uploads to `/audio/transcriptions`: `model`, `filename`, `content_type`, `file`."""
    transcription_failures: list[int] = field(default_factory=list)
    speech: bytes = SPOKEN_REPLY
    speeches: list[dict[str, Any]] = field(default_factory=list)
    """Bodies of `/audio/speech` requests: `model`, `voice`, `input`, `response_format`."""
    speech_failures: list[int] = field(default_factory=list)
    transcription_delay_seconds: float = 0.0
    """How long a transcription takes (the bench's speech-to-text)."""

    def reset(self) -> None:
        self.respond = tool_using_model
        self.requests.clear()
        self.failures.clear()
        self.delay_seconds = 0.0
        self.faults.clear()
        self.chaos = None
        self.delta_delay_seconds = 0.0
        self.transcript = "I'd like to book a table for four"
        self.transcriptions.clear()
        self.transcription_failures.clear()
        self.speech = SPOKEN_REPLY
        self.speeches.clear()
        self.speech_failures.clear()
        self.transcription_delay_seconds = 0.0

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/responses", self._responses, methods=["POST"]),
                Route("/v1/audio/transcriptions", self._transcriptions, methods=["POST"]),
                Route("/v1/audio/speech", self._speech, methods=["POST"]),
            ]
        )

    async def _speech(self, request: Request) -> Response:
        """Like OpenAI: a JSON body; the audio itself, in the format asked for."""
        if request.headers.get("authorization") != "Bearer sk-test":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        self.speeches.append(await request.json())
        if self.speech_failures:
            status = self.speech_failures.pop(0)
            return JSONResponse({"error": {"message": "fake failure"}}, status_code=status)
        return Response(self.speech, media_type="audio/ogg")

    async def _transcriptions(self, request: Request) -> Response:
        """Like OpenAI: a multipart upload of `file` and `model`; JSON `{"text": …}`."""
        if request.headers.get("authorization") != "Bearer sk-test":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        async with request.form() as form:
            upload = form["file"]
            if isinstance(upload, str):
                return JSONResponse({"error": {"message": "file is not a file"}}, status_code=400)
            self.transcriptions.append(
                {
                    "model": form.get("model"),
                    "filename": upload.filename,
                    "content_type": upload.content_type,
                    "file": await upload.read(),
                }
            )
        if self.transcription_failures:
            status = self.transcription_failures.pop(0)
            return JSONResponse({"error": {"message": "fake failure"}}, status_code=status)
        if self.transcription_delay_seconds:
            await asyncio.sleep(self.transcription_delay_seconds)
        return JSONResponse({"text": self.transcript})

    async def _responses(self, request: Request) -> Response:
        if request.headers.get("authorization") != "Bearer sk-test":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        body = await request.json()
        self.requests.append(body)
        fault = self.chaos() if self.chaos else self.faults.get(len(self.requests))
        if isinstance(fault, Failure):
            return JSONResponse(fault.body, status_code=fault.status, headers=fault.headers)
        if fault is not None:
            await asyncio.sleep(fault)
        if self.failures:
            failure = self.failures.pop(0)
            return JSONResponse(failure.body, status_code=failure.status, headers=failure.headers)
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        response = {
            "id": f"resp_{next(_ids)}",
            "object": "response",
            "created_at": 0,
            "model": body.get("model", "fake"),
            "status": "completed",
            "output": self.respond(body),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 10,
                "output_tokens": 5,
                "total_tokens": 15,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
        if body.get("stream"):
            return StreamingResponse(self._stream(response), media_type="text/event-stream")
        return JSONResponse(response)

    async def _stream(self, response: dict[str, Any]) -> AsyncIterator[str]:
        """The Responses API's event sequence for `response`."""
        numbers = itertools.count()

        def event(kind: str, **data: Any) -> str:
            payload = {"type": kind, "sequence_number": next(numbers), **data}
            return f"event: {kind}\ndata: {json.dumps(payload)}\n\n"

        yield event(
            "response.created", response={**response, "status": "in_progress", "output": []}
        )
        for index, item in enumerate(response["output"]):
            at = {"output_index": index}
            if item["type"] == "message":
                text = item["content"][0]["text"]
                part = {"type": "output_text", "text": "", "annotations": []}
                yield event("response.output_item.added", **at, item={**item, "content": []})
                where = {**at, "item_id": item["id"], "content_index": 0}
                yield event("response.content_part.added", **where, part=part)
                for word in re.findall(r"\S+\s*", text):
                    if self.delta_delay_seconds:
                        await asyncio.sleep(self.delta_delay_seconds)
                    yield event("response.output_text.delta", **where, delta=word, logprobs=[])
                yield event("response.output_text.done", **where, text=text, logprobs=[])
                yield event("response.content_part.done", **where, part={**part, "text": text})
            else:
                yield event("response.output_item.added", **at, item={**item, "arguments": ""})
                where = {**at, "item_id": item["id"]}
                arguments = item["arguments"]
                yield event("response.function_call_arguments.delta", **where, delta=arguments)
                yield event("response.function_call_arguments.done", **where, arguments=arguments)
            yield event("response.output_item.done", **at, item=item)
        yield event("response.completed", response=response)
