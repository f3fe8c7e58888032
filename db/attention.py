"""Which conversations need a person, and what a provider's refusal means for them.

A conversation needs attention when its latest turn failed (`FAILED_TURN`), a part of
its latest turn's reply (of that turn's latest try) failed or was not delivered
(`UNDELIVERED`), its bot is paused with messages waiting (`WAITING`), or its reply
window closes within `CLOSING_SOON` (`WINDOW_CLOSING`). This module is where that rule
lives: `attention_flags` are its parts as SQL, one boolean per part for the `sessions`
row of the enclosing query (the inbox selects them beside each conversation, the
conversation page beside its one); `needs_attention` is the filter on them; and
`attention_reasons` names the parts a row's flags hold.

A builder's list does not evaluate the rule on all its sessions (200,000 of them cost
seconds): it evaluates it on the few that can hold it, its `attention_candidates`
(`db.dashboard_queries.sessions_page`). The first two parts can only become true when
a turn fails or a part is refused or not delivered: whatever does that calls `note_attention` (one
statement on a rare path), and the sweeper forgets the noted conversations the rule
no longer flags (`forget_recovered`). The last two are found by index: the paused
conversations, and those whose user wrote in the hours of a window closing soon.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    CursorResult,
    DateTime,
    ScalarSelect,
    and_,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    union,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from db.models import (
    AgentSessionRow,
    AttentionCandidate,
    InboundMessage,
    InboundStatus,
    OutboundMessage,
    OutboundStatus,
    Turn,
    TurnStatus,
)
from db.reply_window import WINDOW, last_user_message_at
from db.upsert import upsert

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


def _noted_flags() -> list[ColumnElement[bool]]:
    """The parts of the rule that only a noted event can make true (`note_attention`)."""
    return [latest_turn_status() == TurnStatus.FAILED, _latest_reply_undelivered()]


def attention_flags(now: datetime) -> list[ColumnElement[bool]]:
    """The rule's parts for the enclosing query's `sessions` row, in `REASONS` order;
    each an indexed lookup led by the conversation's id."""
    return [*_noted_flags(), _waiting_while_paused(), _window_closing(now)]


def needs_attention(now: datetime) -> ColumnElement[bool]:
    """True for a `sessions` row that needs a person (use in `select(AgentSessionRow)`)."""
    return or_(*attention_flags(now))


def attention_candidates(builder_id: uuid.UUID, now: datetime) -> CompoundSelect[uuid.UUID]:
    """The ids of the builder's conversations that may need attention, a superset of
    those that do: the noted ones, the paused ones (`ix_sessions_builder_id_paused`),
    and those whose user wrote through a number in the hours whose windows close soon
    (`ix_inbound_messages_received_at`: that traffic, of every builder, not history)."""
    paused = aliased(AgentSessionRow)
    return union(
        select(AttentionCandidate.session_id).where(AttentionCandidate.builder_id == builder_id),
        select(paused.id).where(paused.builder_id == builder_id, paused.paused_at.is_not(None)),
        select(InboundMessage.session_id).where(
            InboundMessage.received_at > now - WINDOW,
            InboundMessage.received_at <= now - (WINDOW - CLOSING_SOON),
            InboundMessage.channel_id.is_not(None),
        ),
    )


async def note_attention(
    session_id: uuid.UUID | ScalarSelect[uuid.UUID], *, db: AsyncSession
) -> None:
    """A turn of the conversation failed, or a part of a reply was refused or not
    delivered: it may need attention (the list re-checks the rule). `session_id`
    may be a scalar subquery, as of the turn or part in question; noting again renews
    `noted_at`, which keeps `forget_recovered` from dropping a row noted meanwhile."""
    noted = upsert(AttentionCandidate, db=db).from_select(
        ["session_id", "builder_id", "noted_at"],
        select(
            AgentSessionRow.id,
            AgentSessionRow.builder_id,
            literal(datetime.now(UTC), DateTime(timezone=True)),
        ).where(AgentSessionRow.id == session_id),
    )
    await db.execute(
        noted.on_conflict_do_update(
            index_elements=[AttentionCandidate.session_id],
            set_={"noted_at": noted.excluded.noted_at},
        )
    )


KEPT_NOTED = timedelta(minutes=10)
"""How long a noted conversation stays a candidate at least: `forget_recovered` never
races the transaction that noted it (which locks the row, and renews `noted_at`)."""


async def without_jit(db: AsyncSession) -> None:
    """No JIT compilation for the rest of the transaction (Postgres): a query evaluating
    the rule on a few thousand conversations is estimated past `jit_above_cost`, and
    compiling it takes longer than running it (100 ms against 20 on the bench)."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(text("SET LOCAL jit = off"))


async def forget_recovered(*, limit: int, db: AsyncSession) -> int:
    """Forget up to `limit` noted conversations whose latest turn no longer failed and
    whose latest reply was delivered (recovered, or answered since), noted more than
    `KEPT_NOTED` ago; returns how many went. The sweeper's: the list stays a few rows."""
    await without_jit(db)
    now = datetime.now(UTC)
    noted = aliased(AttentionCandidate)
    recovered = (
        select(noted.session_id)
        .join(AgentSessionRow, AgentSessionRow.id == noted.session_id)
        .where(noted.noted_at < now - KEPT_NOTED, or_(*_noted_flags()).is_not(True))
        .limit(limit)
    )
    forgotten = delete(AttentionCandidate).where(
        AttentionCandidate.noted_at < now - KEPT_NOTED,
        AttentionCandidate.session_id.in_(recovered),
    )
    # A DELETE's result is a CursorResult, though `execute` is typed `Result`.
    return cast(CursorResult[Any], await db.execute(forgotten)).rowcount


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
