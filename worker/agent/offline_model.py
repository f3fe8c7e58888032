"""`OfflineModel`: a deterministic stand-in for OpenAI when `OPENAI_API_KEY` is unset.

It answers only from the input the runner hands it, which the runner loaded from our
`DatabaseSession`, so a reply that depends on an earlier message proves the history
round-trip. Output goes through the SDK's own `ScriptedModel`, so responses and stream
events have exactly the shapes a real model produces.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
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
from agents.usage import Usage

from db.transcript import content_text

OFFLINE_MODEL_NAME = "offline"

_STATED_NAME = re.compile(r"(?i:\bmy name is|\bcall me|\bi am|\bi'm)\s+([A-Z][A-Za-z'-]+)")
_ASKS_NAME = re.compile(r"(?i)\b(what(?:'s| is) my name|who am i|remember my name)")
_ASKS_TIME = re.compile(r"(?i)\b(what time|the time|what day|today's date|the date)\b")
_VOICE_NOTE = re.compile(r"\[(?P<what>voice note [\d:]+|audio [^\]]*)\] ?(?P<said>.*)", re.S)
_DOCUMENT = re.compile(r"\[document (?P<what>[^\]]*)\]\n?(?P<text>.*)", re.S)
_ORDER = re.compile(
    r"\[(?P<order>order[^:\]]*): (?P<items>[^\]]*)\](?:\nnote: (?P<note>.*))?", re.S
)
_FORM = re.compile(r"\[form submitted: (?P<fields>[^\]]*)\]")
READ_BACK_CHARACTERS = 160
"""How much of a document's text the offline model reads back."""
_ASKS_TIMES = re.compile(r"(?i)\b(what|which) (times|slots)\b|\bwhen can i\b")
_CHOSE = re.compile(r"\(chose: (?P<option>.+)\)$")
DEMO_TIMES = ["Today 15:00", "Tomorrow 10:00", "Friday 09:30"]
"""What the offline model offers when asked for times: reply buttons on Meta, a
numbered list on Twilio."""
# What `search_documents` returns first: "[source: NAME]" and the best passage.
_PASSAGE = re.compile(r"\[source: (?P<source>[^\]]+)\]\n(?P<text>.+?)(?:\n\n\[source: |\Z)", re.S)


def offline_output(
    items: list[TResponseInputItem], tool_names: set[str]
) -> list[TResponseOutputItem]:
    """The next model output for a conversation, decided by a few plain rules: the time
    tool for the time, options to pick from when asked for times, the document search for
    any other question, names from history."""
    turn_marker = len(items)
    if items and items[-1].get("type") == "function_call_output":
        reply = _answer_from_tool(items, items[-1])
        return [assistant_message(reply, item_id=f"offline-{turn_marker}")]
    user_items = [item for item in items if item.get("role") == "user"]
    user_texts = [content_text(item.get("content")) for item in user_items]
    latest = user_texts[-1] if user_texts else ""
    received = _media_received(user_items[-1].get("content"), latest) if user_items else None
    if received:
        return [assistant_message(received, item_id=f"offline-{turn_marker}")]
    call_id = f"offline-call-{turn_marker}"
    if _ASKS_TIME.search(latest) and "current_time" in tool_names:
        return [function_call("current_time", {"timezone": "UTC"}, call_id=call_id)]
    if _ASKS_TIMES.search(latest) and "reply_with_options" in tool_names:
        offer = {"text": "Which time suits you?", "options": DEMO_TIMES, "list_button": "Times"}
        return [function_call("reply_with_options", offer, call_id=call_id)]
    stated = _STATED_NAME.search(latest)
    chose = _CHOSE.search(latest)
    if chose:
        reply = f"{chose.group('option')} it is. See you then!"
    elif stated:
        reply = f"Nice to meet you, {stated.group(1)}! I'm the offline demo model."
    elif _ASKS_NAME.search(latest):
        earlier = [m.group(1) for text in user_texts[:-1] if (m := _STATED_NAME.search(text))]
        reply = f"Your name is {earlier[-1]}." if earlier else "You haven't told me your name yet."
    elif "?" in latest and "search_documents" in tool_names:
        return [function_call("search_documents", {"query": latest}, call_id=call_id)]
    else:
        reply = (
            f"You said: {latest!r}. ({len(user_texts)} of your messages are in this conversation.)"
        )
    return [assistant_message(reply, item_id=f"offline-{turn_marker}")]


def _media_received(content: Any, text: str) -> str | None:
    """What the offline model says it got when the latest message carried a photo, a
    voice note, a document, an order or a form: the kind, its size or length, and what
    it said, reads or holds (the caption, the transcript, the text, the items, the
    fields), from nothing but the input it was handed."""
    images = [
        part
        for part in (content if isinstance(content, list) else [])
        if isinstance(part, dict) and str(part.get("image_url", "")).startswith("data:")
    ]
    if images:
        header, _, data = str(images[0]["image_url"]).partition(";base64,")
        size = len(data) * 3 // 4 - data.count("=")
        caption = text.split("\n", 1)[1].removesuffix("[image]").strip() if "\n" in text else ""
        said = f' with the caption "{caption}"' if caption else ""
        return (
            f"I received your photo ({header.removeprefix('data:')}, {size:,} bytes){said}. "
            "I'm the offline demo model, so I can't see what is in it."
        )
    voice = _VOICE_NOTE.match(text)
    if voice:
        return f"I received your {voice.group('what')}: {voice.group('said') or '(no words)'}"
    document = _DOCUMENT.match(text)
    if document:
        reads = " / ".join(document.group("text").split("\n"))
        if len(reads) > READ_BACK_CHARACTERS:
            reads = reads[:READ_BACK_CHARACTERS].rstrip() + " …"
        said = f' It reads: "{reads}"' if reads else " I could not read any text in it."
        return f"I received your document ({document.group('what')}).{said}"
    order = _ORDER.match(text)
    if order:
        note = order.group("note")
        noted = f' Your note: "{note.strip()}".' if note else ""
        return f"I received your {order.group('order')}: {order.group('items')}.{noted}"
    form = _FORM.match(text)
    if form:
        return f"I received your form: {form.group('fields')}."
    return None


def _answer_from_tool(items: list[TResponseInputItem], output: TResponseInputItem) -> str:
    """The answer to a tool's result: the time as told, or the best passage the document
    search found (with its source), or that the documents do not say."""
    call: Mapping[str, Any] = next(
        (
            item
            for item in items
            if item.get("type") == "function_call" and item.get("call_id") == output.get("call_id")
        ),
        {},
    )
    result = str(output.get("output", ""))
    if call.get("name") != "search_documents":
        return f"It is {result} now."
    question = json.loads(call.get("arguments") or "{}").get("query", "")
    found = _PASSAGE.match(result)
    if found is None:
        return "I don't know: nothing in our documents answers that."
    return f"From {found.group('source')}: {_best_sentence(found.group('text'), question)}"


def _best_sentence(passage: str, question: str) -> str:
    """The passage's sentence sharing most words with the question (the first on a tie);
    words match on their first four letters, so "open" finds "opening" too."""
    asked = _word_stems(question)
    sentences = [
        sentence.strip("# ")
        for line in passage.splitlines()
        for sentence in re.split(r"(?<=[.!?])\s+", line)
        if sentence.strip("# ")
    ]
    return max(sentences, key=lambda sentence: len(asked & _word_stems(sentence)), default=passage)


def _word_stems(text: str) -> set[str]:
    return {word[:4] for word in re.findall(r"\w{3,}", text.lower())}


def estimated_usage(
    system_instructions: str | None, items: list[Any], output: list[TResponseOutputItem]
) -> Usage:
    """Tokens as OpenAI would roughly count them (about four characters each), so the
    token metrics move in the demo as they would with a real model."""
    read = (len(system_instructions or "") + len(json.dumps(items, default=str))) // 4
    written = sum(len(_written(item)) for item in output) // 4
    return Usage(requests=1, input_tokens=read, output_tokens=written, total_tokens=read + written)


def _written(item: TResponseOutputItem) -> str:
    """What the model wrote in an output item: a message's text or a call's arguments."""
    if item.type == "function_call":
        return item.name + item.arguments
    if item.type == "message":
        return "".join(getattr(part, "text", "") for part in item.content)
    return ""


class OfflineModel(Model):
    """An SDK `Model` that never leaves the machine."""

    def _scripted(
        self,
        system_instructions: str | None,
        input: str | list[TResponseInputItem],
        tools: list[Tool],
    ) -> ScriptedModel:
        items: list[Any] = [{"role": "user", "content": input}] if isinstance(input, str) else input
        output = offline_output(items, {tool.name for tool in tools})
        usage = estimated_usage(system_instructions, items, output)
        return ScriptedModel([ModelStep(output=output, usage=usage, response_id=None)])

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
        return await self._scripted(system_instructions, input, tools).get_response(
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
        return self._scripted(system_instructions, input, tools).stream_response(
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
