"""`reply_with_options`: the agent answers with choices the user taps (WhatsApp reply
buttons or a list on Meta, a numbered list on Twilio) instead of typing.

The call is the turn's answer: the run stops at it (`stop_at_options`), so the model is
not asked again to repeat what the user is about to see. Its output, stored by the SDK
with the call, is the offer as JSON (`Reply.as_offer`); `run_agent` then stores the
text the user reads as the assistant message, so history says what was offered."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agents import FunctionToolResult, RunContextWrapper, ToolsToFinalOutputResult, function_tool

from db.lossless_json import plain_text
from db.offered_options import DEFAULT_LIST_BUTTON, OfferedOptions, numbered
from worker.agent.run_context import TurnContext

TOOL_NAME = "reply_with_options"
MAX_OPTIONS = 10
MAX_OPTION_LENGTH = 72
_OFFER_KEY = "offered_to_user"


@dataclass(frozen=True)
class Reply:
    """What a run answers: text, and the options it offers when it offers some."""

    text: str
    options: OfferedOptions | None = None

    @property
    def as_read(self) -> str:
        """The text with its options numbered: what the history keeps of it."""
        return numbered(self.text, self.options) if self.options else self.text

    def as_offer(self) -> str:
        """The tool's output: the model reads it back in later turns, and a resumed turn
        finds the offer in it (`from_offer`)."""
        options = self.options.as_json() if self.options else {}
        return json.dumps({_OFFER_KEY: {"text": self.text, **options}}, ensure_ascii=False)

    @classmethod
    def from_offer(cls, output: Any) -> Reply | None:
        """The reply an `as_offer` output holds; None for any other output."""
        try:
            offer = json.loads(output).get(_OFFER_KEY) if isinstance(output, str) else None
        except (ValueError, AttributeError):
            return None
        options = OfferedOptions.from_json(offer)
        if options is None or not isinstance(offer, dict) or not isinstance(offer.get("text"), str):
            return None
        return cls(offer["text"], options)


@function_tool(name_override=TOOL_NAME)
def reply_with_options(
    text: str, options: list[str], list_button: str = DEFAULT_LIST_BUTTON
) -> str:
    """Answer the customer with choices they can tap, when they should pick one of a
    few (times, products, yes or no). This sends your whole reply: write nothing else.

    Args:
        text: The message above the choices, e.g. "Which time suits you?".
        options: The choices, 1 to 10, each short (up to 20 characters shows as a
            button, longer ones as a list; at most 72).
        list_button: The label of the button that opens a list of more than three
            choices, in the customer's language (up to 20 characters).
    """
    titles = [title for title in dict.fromkeys(plain_text(o).strip() for o in options) if title]
    text = plain_text(text).strip()
    if not text:
        return "Error: write the message text that goes above the choices."
    if not 1 <= len(titles) <= MAX_OPTIONS:
        return f"Error: offer between 1 and {MAX_OPTIONS} different choices."
    if any(len(title) > MAX_OPTION_LENGTH for title in titles):
        return f"Error: keep each choice under {MAX_OPTION_LENGTH} characters."
    button = plain_text(list_button).strip() or DEFAULT_LIST_BUTTON
    return Reply(text, OfferedOptions(tuple(titles), button)).as_offer()


def stop_at_options(
    _context: RunContextWrapper[TurnContext], results: list[FunctionToolResult]
) -> ToolsToFinalOutputResult:
    """The run ends at a valid `reply_with_options` call, its offer (`Reply.as_offer`)
    the final output (the SDK makes a final output text); a call it refused goes back to
    the model with the reason, like any tool result."""
    offers = [result.output for result in results if result.tool.name == TOOL_NAME]
    if not offers or Reply.from_offer(offers[-1]) is None:
        return ToolsToFinalOutputResult(is_final_output=False)
    return ToolsToFinalOutputResult(is_final_output=True, final_output=offers[-1])
