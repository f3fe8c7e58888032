"""Approved WhatsApp templates a builder may send outside the 24-hour window, and a
template filled in for one send (what the outbox records and the user reads).

A template's body holds `{{1}}`, `{{2}}`… (or Meta's named `{{first_name}}`) where its
variables go; they are filled in the order they first appear."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import MessageTemplate
from db.upsert import upsert

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
MAX_VARIABLE_CHARS = 1024
"""Meta refuses a body parameter longer than this."""


def placeholders(body: str) -> list[str]:
    """The variables' names in `body`, each once, in the order they first appear."""
    return list(dict.fromkeys(PLACEHOLDER.findall(body)))


def filled(body: str, values: dict[str, str]) -> str:
    """`body` with each placeholder replaced by its value (one without a value is left)."""
    return PLACEHOLDER.sub(lambda found: values.get(found.group(1), found.group(0)), body)


@dataclass(frozen=True)
class FilledTemplate:
    """A template with its variables, as sent once: Meta's by `name` and `language`,
    Twilio's by `content_sid`; `text` is what the user reads."""

    provider: str
    name: str
    language: str
    variables: tuple[tuple[str, str], ...]
    """(placeholder name, value) in the body's order."""
    text: str
    content_sid: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "name": self.name,
            "language": self.language,
            "variables": [list(pair) for pair in self.variables],
            "text": self.text,
            "content_sid": self.content_sid,
        }

    @classmethod
    def from_json(cls, value: Any) -> FilledTemplate | None:
        """The template stored as `as_json` made it; None for anything else."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(
                provider=str(value["provider"]),
                name=str(value["name"]),
                language=str(value["language"]),
                variables=tuple((str(key), str(text)) for key, text in value["variables"]),
                text=str(value["text"]),
                content_sid=value.get("content_sid"),
            )
        except (KeyError, TypeError, ValueError):
            return None


class TemplateVariablesError(ValueError):
    """The values given do not fit the template; the message says how."""


def fill_template(template: MessageTemplate, values: Sequence[str]) -> FilledTemplate:
    """`template` with `values` for its variables, in order; one value per variable,
    none empty or over Meta's 1,024 characters."""
    names = placeholders(template.body)
    if len(values) != len(names):
        raise TemplateVariablesError(
            f"template {template.name!r} takes {len(names)} variable(s), got {len(values)}"
        )
    for number, value in enumerate(values, 1):
        if not value.strip():
            raise TemplateVariablesError(f"variable {number} is empty")
        if len(value) > MAX_VARIABLE_CHARS:
            raise TemplateVariablesError(
                f"variable {number} is longer than {MAX_VARIABLE_CHARS} characters"
            )
    pairs = tuple(zip(names, (value.strip() for value in values), strict=True))
    return FilledTemplate(
        provider=template.provider,
        name=template.name,
        language=template.language,
        variables=pairs,
        text=filled(template.body, dict(pairs)),
        content_sid=template.content_sid,
    )


@dataclass(frozen=True)
class TemplateRow:
    """A template as a provider lists it (or an operator adds it)."""

    name: str
    language: str
    status: str
    body: str
    content_sid: str | None = None


async def store_templates(
    builder_id: uuid.UUID, provider: str, rows: Sequence[TemplateRow], *, db: AsyncSession
) -> None:
    """Add or update the builder's templates by (provider, name, language)."""
    if not rows:
        return
    statement = upsert(MessageTemplate, db=db)
    statement = statement.on_conflict_do_update(
        index_elements=["builder_id", "provider", "name", "language"],
        set_={
            "status": statement.excluded.status,
            "body": statement.excluded.body,
            "content_sid": statement.excluded.content_sid,
            "updated_at": datetime.now(UTC),
        },
    )
    await db.execute(
        statement,
        [
            {
                "id": uuid.uuid4(),
                "builder_id": builder_id,
                "provider": provider,
                "name": row.name,
                "language": row.language,
                "status": row.status,
                "body": row.body,
                "content_sid": row.content_sid,
            }
            for row in rows
        ],
    )


async def templates_of(
    builder_id: uuid.UUID,
    *,
    provider: str | None = None,
    approved_only: bool = False,
    db: AsyncSession,
) -> list[MessageTemplate]:
    """The builder's templates by name and language (of one provider, or approved only)."""
    query = select(MessageTemplate).where(MessageTemplate.builder_id == builder_id)
    if provider is not None:
        query = query.where(MessageTemplate.provider == provider)
    if approved_only:
        query = query.where(MessageTemplate.status == "APPROVED")
    query = query.order_by(MessageTemplate.name, MessageTemplate.language)
    return list(await db.scalars(query))
