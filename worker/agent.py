"""The builder's agent: its instructions, its model and the tools every bot gets."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agents import Agent, Model, RunContextWrapper, function_tool

from db.models import Builder

MAX_TURNS = 8

WHATSAPP_STYLE = (
    "You are talking with a customer on WhatsApp. Answer briefly in plain text; "
    "use the tools when a question depends on them."
)


@dataclass(frozen=True)
class TurnContext:
    """What tools and instructions may know about the run (never sent to the model as is)."""

    builder_id: uuid.UUID
    session_id: uuid.UUID
    user_name: str | None = None


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


def _instructions(builder: Builder) -> Instructions:
    """The builder's text plus what we know of this customer, rendered per run."""

    def render(context: RunContextWrapper[TurnContext], _agent: Agent[TurnContext]) -> str:
        parts = [builder.instructions, WHATSAPP_STYLE]
        if context.context.user_name:
            parts.append(f"The customer's WhatsApp profile name is {context.context.user_name}.")
        return "\n\n".join(parts)

    return render


def build_agent(builder: Builder, model: Model) -> Agent[TurnContext]:
    return Agent[TurnContext](
        name=builder.name,
        instructions=_instructions(builder),
        model=model,
        tools=[current_time],
    )
