"""The builder form of the dashboard: its fields read into the settings `db.builders`
stores, with a problem per field instead of an error page."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData

from db.builders import NUMBER_LIMITS, setting_problems
from db.models import Builder

TEXT_FIELDS = ("name", "instructions", "model", "unsupported_reply", "fallback_reply")
OPTIONAL_TEXT = ("unsupported_reply", "fallback_reply")
"""Left empty: the default text."""
SWITCHES = ("reactions_as_input", "voice_replies")
LONGEST_FIELD = 20_000
"""No setting is longer (instructions included): the rest is a mistake or an attack."""


@dataclass
class BuilderForm:
    """What was typed (shown again when refused), the settings it makes, what is wrong."""

    typed: dict[str, str] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)


def builder_form(form: FormData, *, default_model: str) -> BuilderForm:
    """The settings in `form`; an empty number or reply means the default (None)."""
    read = BuilderForm()
    for key in (*TEXT_FIELDS, *NUMBER_LIMITS):
        value = form.get(key)
        read.typed[key] = value.strip() if isinstance(value, str) else ""
    for key in TEXT_FIELDS:
        text = read.typed[key]
        if len(text) > LONGEST_FIELD:
            read.problems[key] = f"must be at most {LONGEST_FIELD} characters"
        elif key in OPTIONAL_TEXT:
            read.changes[key] = text or None
        else:
            read.changes[key] = text or (default_model if key == "model" else "")
    for key in NUMBER_LIMITS:
        raw = read.typed[key]
        if not raw:
            read.changes[key] = None
            continue
        try:
            read.changes[key] = float(raw) if key == "temperature" else int(raw)
        except ValueError:
            kind = "a number" if key == "temperature" else "a whole number"
            read.problems[key] = f"must be {kind} (or empty for the default)"
    for key in SWITCHES:
        read.changes[key] = form.get(key) == "on"
        read.typed[key] = "on" if read.changes[key] else ""
    checked = {key: value for key, value in read.changes.items() if key not in read.problems}
    read.problems.update(setting_problems(checked))
    return read


def typed_from(builder: Builder) -> dict[str, str]:
    """The form filled with `builder`'s current settings."""
    typed = {
        key: "" if getattr(builder, key) is None else str(getattr(builder, key))
        for key in (*TEXT_FIELDS, *NUMBER_LIMITS)
    }
    typed.update({key: "on" if getattr(builder, key) else "" for key in SWITCHES})
    return typed
