"""`OfflineModel`: a deterministic stand-in for OpenAI when `OPENAI_API_KEY` is unset.

It answers only from the input the runner hands it, which the runner loaded from our
`DatabaseSession`, so a reply that depends on an earlier message proves the history
round-trip. Output goes through the SDK's own `ScriptedModel`, so responses and stream
events have exactly the shapes a real model produces.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelSettings, ModelTracing, Tool
from agents.agent_output import AgentOutputSchemaBase
from agents.handoffs import Handoff
from agents.items import (
    ModelResponse,
    TResponseInputItem,
    TResponseOutputItem,
    TResponseStreamEvent,
)
from agents.testing import ModelStep, ScriptedModel, assistant_message, function_call

from db.transcript import content_text

OFFLINE_MODEL_NAME = "offline"

_STATED_NAME = re.compile(r"(?i:\bmy name is|\bcall me|\bi am|\bi'm)\s+([A-Z][A-Za-z'-]+)")
_ASKS_NAME = re.compile(r"(?i)\b(what(?:'s| is) my name|who am i|remember my name)")
_ASKS_TIME = re.compile(r"(?i)\b(what time|the time|what day|today's date|the date)\b")


def offline_output(
    items: list[TResponseInputItem], tool_names: set[str]
) -> list[TResponseOutputItem]:
    """The next model output for a conversation, decided by a few plain rules."""
    turn_marker = len(items)
    if items and items[-1].get("type") == "function_call_output":
        return [
            assistant_message(
                f"It is {items[-1].get('output')} now.", item_id=f"offline-{turn_marker}"
            )
        ]
    user_texts = [content_text(item.get("content")) for item in items if item.get("role") == "user"]
    latest = user_texts[-1] if user_texts else ""
    if _ASKS_TIME.search(latest) and "current_time" in tool_names:
        return [
            function_call(
                "current_time", {"timezone": "UTC"}, call_id=f"offline-call-{turn_marker}"
            )
        ]
    stated = _STATED_NAME.search(latest)
    if stated:
        reply = f"Nice to meet you, {stated.group(1)}! I'm the offline demo model."
    elif _ASKS_NAME.search(latest):
        earlier = [m.group(1) for text in user_texts[:-1] if (m := _STATED_NAME.search(text))]
        reply = f"Your name is {earlier[-1]}." if earlier else "You haven't told me your name yet."
    else:
        reply = (
            f"You said: {latest!r}. ({len(user_texts)} of your messages are in this conversation.)"
        )
    return [assistant_message(reply, item_id=f"offline-{turn_marker}")]


class OfflineModel(Model):
    """An SDK `Model` that never leaves the machine."""

    def _scripted(self, input: str | list[TResponseInputItem], tools: list[Tool]) -> ScriptedModel:
        items: list[Any] = [{"role": "user", "content": input}] if isinstance(input, str) else input
        output = offline_output(items, {tool.name for tool in tools})
        return ScriptedModel([ModelStep(output=output, response_id=None)])

    async def get_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any | None,
    ) -> ModelResponse:
        return await self._scripted(input, tools).get_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        )

    def stream_response(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        model_settings: ModelSettings,
        tools: list[Tool],
        output_schema: AgentOutputSchemaBase | None,
        handoffs: list[Handoff],
        tracing: ModelTracing,
        *,
        previous_response_id: str | None,
        conversation_id: str | None,
        prompt: Any | None,
    ) -> AsyncIterator[TResponseStreamEvent]:
        return self._scripted(input, tools).stream_response(
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
            tracing,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            prompt=prompt,
        )
