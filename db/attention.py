"""Which conversations need a person, and what a provider's refusal means for them.

A conversation needs attention when its latest turn failed, its latest reply was not
delivered, or its bot is paused with messages waiting. `needs_attention_condition` is
that rule as SQL (for a filtered list: one statement however many conversations);
`needs_attention_reasons` says which parts hold for one conversation, in words.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import (
    AgentSessionRow,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
    Turn,
    TurnStatus,
)

FAILED_TURN = "failed turn"
UNDELIVERED_REPLY = "undelivered reply"
WAITING_WHILE_PAUSED = "paused with waiting messages"
NOT_DELIVERED = (OutboundStatus.FAILED, OutboundStatus.UNDELIVERED)


def _latest_turn_failed() -> ColumnElement[bool]:
    latest = (
        select(Turn.status)
        .where(Turn.session_id == AgentSessionRow.id)
        .order_by(Turn.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    return latest == TurnStatus.FAILED


def _latest_reply_undelivered() -> ColumnElement[bool]:
    latest = (
        select(OutboundMessage.status)
        .where(OutboundMessage.session_id == AgentSessionRow.id)
        .order_by(OutboundMessage.created_at.desc(), OutboundMessage.part.desc())
        .limit(1)
        .scalar_subquery()
    )
    return latest.in_([str(status) for status in NOT_DELIVERED])


def _waiting_while_paused() -> ColumnElement[bool]:
    return and_(
        AgentSessionRow.paused_at.is_not(None),
        exists().where(
            InboundMessage.session_id == AgentSessionRow.id,
            InboundMessage.status == InboundStatus.PENDING,
        ),
    )


def needs_attention_condition() -> ColumnElement[bool]:
    """True for a `sessions` row that needs a person (use in `select(AgentSessionRow)`):
    its latest turn failed, its latest reply part failed or was undelivered, or it is
    paused with pending messages. Each part is an indexed lookup per conversation."""
    return or_(_latest_turn_failed(), _latest_reply_undelivered(), _waiting_while_paused())


async def needs_attention_reasons(session_id: uuid.UUID, *, db: AsyncSession) -> list[str]:
    """Why this conversation needs attention (`FAILED_TURN`, `UNDELIVERED_REPLY`,
    `WAITING_WHILE_PAUSED`, in that order); empty when it does not."""
    row = (
        await db.execute(
            select(
                _latest_turn_failed(), _latest_reply_undelivered(), _waiting_while_paused()
            ).where(AgentSessionRow.id == session_id)
        )
    ).first()
    if row is None:
        return []
    reasons = (FAILED_TURN, UNDELIVERED_REPLY, WAITING_WHILE_PAUSED)
    return [reason for reason, holds in zip(reasons, row, strict=True) if holds]


_CODE = re.compile(r"\b(?:code|error) (?P<code>\d{3,6})\b")

KNOWN_CODES = {
    "63016": "outside the 24-hour window",
    "131047": "outside the 24-hour window (re-engagement message)",
    "63024": "Invalid message recipient",
    "63003": "the recipient's address is not on WhatsApp",
    "131026": "Message undeliverable (the recipient cannot receive WhatsApp messages)",
}
"""Provider error codes a retry cannot fix (Twilio 63016/63024/63003, Meta 131047/131026),
with what they mean: a status callback often carries only the code."""

OUTSIDE_WINDOW = frozenset({"63016", "131047"})
NOT_ON_WHATSAPP = frozenset({"63024", "63003", "131026"})


@dataclass(frozen=True)
class Refusal:
    """A provider's refusal as an operator reads it: the code and its text, and, when
    retrying cannot help, why and what can work instead."""

    code: str | None
    text: str
    unfixable: str | None
    """Why a retry cannot help (None: it may)."""
    offer_template: bool
    """A template message can still reach the user (outside the 24-hour window)."""


def read_refusal(error: str) -> Refusal:
    """`Twilio error 63024: …`, `Meta HTTP 400 (code 131047): …` and the like, read."""
    found = _CODE.search(error)
    code = found.group("code") if found else None
    text = error
    if found is not None and code is not None:
        detail = error[found.end() :].lstrip("): ").strip()
        text = f"{code} {detail or KNOWN_CODES.get(code, '')}".strip()
    if code in OUTSIDE_WINDOW:
        why = (
            "Retrying cannot fix this: the user last wrote more than 24 hours ago, so "
            "WhatsApp only accepts an approved template until they write again."
        )
        return Refusal(code, text, why, offer_template=True)
    if code in NOT_ON_WHATSAPP:
        why = (
            "Retrying cannot fix this: the recipient cannot receive WhatsApp messages "
            "(not on WhatsApp, or the number is wrong)."
        )
        return Refusal(code, text, why, offer_template=False)
    return Refusal(code, text, None, offer_template=False)
