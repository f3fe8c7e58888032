"""Choices a reply offers the user (WhatsApp buttons or a list, numbered text where those
cannot be sent), and how a bare number the user answers maps back to one of them.

The outbox keeps them with the reply's last part (`OutboundMessage.options`), so a
resumed send offers the same choices and the next turn knows what "2" meant."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DEFAULT_LIST_BUTTON = "Choose"
_BARE_NUMBER = re.compile(r"\s*(\d{1,2})[.)]?\s*")


@dataclass(frozen=True)
class OfferedOptions:
    """`titles` in the order offered; `list_button` labels the button that opens a list."""

    titles: tuple[str, ...]
    list_button: str = DEFAULT_LIST_BUTTON

    def as_json(self) -> dict[str, Any]:
        return {"titles": list(self.titles), "list_button": self.list_button}

    @classmethod
    def from_json(cls, value: Any) -> OfferedOptions | None:
        """The options stored as `as_json` made them; None for anything else."""
        if not isinstance(value, dict):
            return None
        titles = value.get("titles")
        button = value.get("list_button")
        if not (isinstance(titles, list) and titles and all(isinstance(t, str) for t in titles)):
            return None
        return cls(tuple(titles), button if isinstance(button, str) else DEFAULT_LIST_BUTTON)


def numbered(text: str, options: OfferedOptions) -> str:
    """`text` followed by the options as a numbered list: what a user without buttons
    reads, and what the history keeps of an offer."""
    lines = "\n".join(f"{number}. {title}" for number, title in enumerate(options.titles, 1))
    return f"{text}\n\n{lines}" if text else lines


def numbered_length(options: OfferedOptions) -> int:
    """How many characters `numbered` adds to a text."""
    return len(numbered("", options)) + 2


def picked_number(text: str) -> int | None:
    """The number a message that is only a number ("2", " 2. ") says, else None."""
    match = _BARE_NUMBER.fullmatch(text)
    return int(match.group(1)) if match else None


def chosen(text: str, options: OfferedOptions | None) -> str | None:
    """The option a bare number picks of `options`, or None when it picks none."""
    number = picked_number(text)
    if number is None or options is None or not 1 <= number <= len(options.titles):
        return None
    return options.titles[number - 1]
