"""Which conversations need a person, and what a provider's refusal means for them.

A conversation needs attention when its latest turn failed (`FAILED_TURN`), a part of
its latest turn's reply (of that turn's latest try) failed or was not delivered
(`UNDELIVERED`), its bot is paused with messages waiting (`WAITING`), or its reply
window closes within `CLOSING_SOON` (`WINDOW_CLOSING`). This module is where that rule
lives: `attention_flags` are its parts as SQL, one boolean per part for the `sessions`
row of the enclosing query (the inbox selects them beside each conversation, the
conversation page beside its one); `needs_attention` is the inbox's filter on them; and
`attention_reasons` names the parts a row's flags hold.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select

from db.models import (
    AgentSessionRow,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
    Turn,
    TurnStatus,
)
from db.reply_window import WINDOW, last_user_message_at

FAILED_TURN = "failed turn"
UNDELIVERED = "undelivered"
WAITING = "waiting"
WINDOW_CLOSING = "window closing"
REASONS = (FAILED_TURN, UNDELIVERED, WAITING, WINDOW_CLOSING)
"""What `attention_flags` stand for, in their order (the API lists them by these words)."""

NOT_DELIVERED = (OutboundStatus.FAILED, OutboundStatus.UNDELIVERED)
WAITING_STATUSES = (InboundStatus.PENDING, InboundStatus.PROCESSING)
"""An inbound message in these is not answered yet: it waits (for the bot or a human)."""
CLOSING_SOON = timedelta(hours=4)
"""A reply window this close to closing needs attention: the user last wrote 20 to 24
hours ago."""


def latest_turn_status() -> ColumnElement[str | None]:
    """The status of the conversation's newest turn (`ix_turns_session_id_created_at`)."""
    return (
        select(Turn.status)
        .where(Turn.session_id == AgentSessionRow.id)
        .order_by(Turn.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )


def _latest_reply_undelivered() -> ColumnElement[bool]:
    latest_turn = (
        select(Turn.id)
        .where(Turn.session_id == AgentSessionRow.id)
        .order_by(Turn.created_at.desc())
        .limit(1)
        .correlate(AgentSessionRow)  # the outer query's row, two levels up
        .scalar_subquery()
    )
    latest_try = (
        select(func.max(OutboundMessage.retry))
        .where(OutboundMessage.turn_id == latest_turn)
        .scalar_subquery()
    )
    return exists().where(
        OutboundMessage.turn_id == latest_turn,
        OutboundMessage.retry == latest_try,
        OutboundMessage.status.in_(NOT_DELIVERED),
    )


def _waiting_while_paused() -> ColumnElement[bool]:
    return and_(
        AgentSessionRow.paused_at.is_not(None),
        exists().where(
            InboundMessage.session_id == AgentSessionRow.id,
            InboundMessage.status.in_(WAITING_STATUSES),
        ),
    )


def _window_closing(now: datetime) -> ColumnElement[bool]:
    last = last_user_message_at(AgentSessionRow.id)
    return and_(last > now - WINDOW, last <= now - (WINDOW - CLOSING_SOON))


def attention_flags(now: datetime) -> list[ColumnElement[bool]]:
    """The rule's parts for the enclosing query's `sessions` row, in `REASONS` order;
    each an indexed lookup led by the conversation's id."""
    return [
        latest_turn_status() == TurnStatus.FAILED,
        _latest_reply_undelivered(),
        _waiting_while_paused(),
        _window_closing(now),
    ]


def needs_attention(now: datetime) -> ColumnElement[bool]:
    """True for a `sessions` row that needs a person (use in `select(AgentSessionRow)`)."""
    return or_(*attention_flags(now))


def attention_reasons(flags: Sequence[bool | None]) -> tuple[str, ...]:
    """The `REASONS` whose flag (as selected from `attention_flags`) holds."""
    return tuple(reason for reason, holds in zip(REASONS, flags, strict=True) if holds)


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
