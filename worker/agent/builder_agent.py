"""The builder's agent: its instructions, its model and the tools every bot gets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import Agent, Model, ModelSettings, RunContextWrapper, function_tool

from db.models import Builder
from worker.agent.choices import reply_with_options, stop_at_options
from worker.agent.knowledge import KNOWLEDGE_STYLE, search_documents
from worker.agent.run_context import TurnContext

MAX_TURNS = 8
AGENTS_KEPT = 256
"""Built agents a worker process keeps, one per builder configuration in use."""

WHATSAPP_STYLE = (
    "You are talking with a customer on WhatsApp. Answer briefly in plain text; "
    "use the tools when a question depends on them."
)


@function_tool
def current_time(timezone: str = "UTC") -> str:
    """The current date and time, for questions like "are you open now?".

    Args:
        timezone: An IANA time zone name such as "Europe/Amsterdam".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"Unknown time zone {timezone!r}; use an IANA name such as Europe/Amsterdam."
    return datetime.now(zone).strftime("%A %d %B %Y, %H:%M %Z")


Instructions = Callable[[RunContextWrapper[TurnContext], Agent[TurnContext]], str]


def _instructions(builder_text: str) -> Instructions:
    """The builder's text plus what we know of this customer, rendered per run."""

    def render(context: RunContextWrapper[TurnContext], _agent: Agent[TurnContext]) -> str:
        parts = [builder_text, WHATSAPP_STYLE, KNOWLEDGE_STYLE]
        if context.context.user_name:
            parts.append(f"The customer's WhatsApp profile name is {context.context.user_name}.")
        return "\n\n".join(parts)

    return render


def build_agent(builder: Builder, model: Model) -> Agent[TurnContext]:
    """The builder's agent with its model settings (unset ones are the model's defaults);
    a run ends at a `reply_with_options` call, which is the answer.

    An agent is configuration the SDK only reads, so one is built per configuration and
    shared by every run that has it: building one (the SDK's checks of its settings and
    tools) cost about 90 µs a turn. A builder who edits theirs gets a new one."""
    return _agent(
        builder.name, builder.instructions, builder.temperature, builder.max_tokens, model
    )


@lru_cache(maxsize=AGENTS_KEPT)
def _agent(
    name: str,
    instructions: str,
    temperature: float | None,
    max_tokens: int | None,
    model: Model,
) -> Agent[TurnContext]:
    return Agent[TurnContext](
        name=name,
        instructions=_instructions(instructions),
        model=model,
        model_settings=ModelSettings(temperature=temperature, max_tokens=max_tokens),
        tools=[current_time, search_documents, reply_with_options],
        tool_use_behavior=stop_at_options,
    )
