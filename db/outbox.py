"""Outbound replies: recorded before sending (idempotent per turn and part), then
advanced by send results and provider delivery callbacks.

A part is `sending` from just before it goes to the provider until the provider's answer
is recorded: the statement that records the reply marks the first part so, and the one
that records a part sent marks the next. A part still `sending` when its turn resumes may
have reached the user, and is looked up at the provider before it is sent again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect, bindparam, case, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import lossless_json
from db.attention import NOT_DELIVERED, note_attention
from db.models import Channel, OutboundMessage, OutboundStatus
from db.offered_options import OfferedOptions
from db.prepared import run, single_statements
from db.templates import FilledTemplate
from db.upsert import insert_or_ignore

# Delivery states only move forward: a late `sent` callback never overwrites `read`.
STATUS_RANK: dict[str, int] = {
    OutboundStatus.PENDING: 0,
    OutboundStatus.SENDING: 0,
    OutboundStatus.QUEUED: 1,
    OutboundStatus.SENT: 2,
    OutboundStatus.DELIVERED: 3,
    OutboundStatus.READ: 4,
    OutboundStatus.PLAYED: 5,
    OutboundStatus.UNDELIVERED: 6,
    OutboundStatus.FAILED: 6,
}


async def record_reply(
    *,
    session_id: uuid.UUID,
    turn_id: uuid.UUID,
    retry: int,
    channel_id: uuid.UUID | None,
    recipient: str,
    parts: list[str],
    options: OfferedOptions | None = None,
    voice: uuid.UUID | None = None,
    template: FilledTemplate | None = None,
    db: AsyncSession,
) -> list[OutboundMessage]:
    """Record the reply's parts once per try of a turn, the first as `sending` (one
    statement), the last with the `options` it offers, the `voice` note (a stored file)
    that says it, or the `template` it sends; a resumed try gets the rows it recorded
    before, a retry of a failed turn records its own."""
    last = len(parts) - 1
    rows = [
        {
            "id": uuid.uuid4(),
            "session_id": session_id,
            "turn_id": turn_id,
            "retry": retry,
            "part": index,
            "channel_id": channel_id,
            "recipient": recipient,
            "text": text,
            "options": options.as_json() if options is not None and index == last else None,
            "media_id": voice if index == last else None,
            "template": template.as_json() if template is not None and index == last else None,
            "status": OutboundStatus.SENDING if index == 0 else OutboundStatus.PENDING,
        }
        for index, text in enumerate(parts)
    ]
    statements = single_statements(db)
    if statements is not None:
        created = await statements.fetch(_POSTGRES_RECORD, _postgres_record_params(rows))
        if len(created) == len(parts):
            return [
                OutboundMessage(**row, created_at=at)
                for row, (at,) in zip(rows, created, strict=True)
            ]
    else:
        recorded = await db.scalars(
            insert_or_ignore(OutboundMessage, db=db).returning(OutboundMessage), rows
        )
        new_rows = sorted(recorded, key=lambda reply: reply.part)
        if len(new_rows) == len(parts):
            return new_rows
    return await replies_of(turn_id, retry=retry, db=db)


# `record_reply` as one statement on a persistent connection (a unit of work in
# autocommit mode on Postgres): all parts at once, so a reply is recorded whole or not
# at all, in a statement of the same text for any number of parts (psycopg prepares it
# once). Each new part returns the time it was recorded, the same for all.
_POSTGRES_RECORD = """
    INSERT INTO outbound_messages (id, session_id, turn_id, retry, part, channel_id,
                                   recipient, text, options, media_id, template, status)
    SELECT p.id, %(session_id)s::uuid, %(turn_id)s::uuid, %(retry)s::int, p.part,
           %(channel_id)s::uuid, %(recipient)s::text, p.text, p.options::jsonb,
           p.media_id, p.template::jsonb, p.status
    FROM json_to_recordset(%(parts)s::json)
        AS p(id uuid, part int, text text, options text, media_id uuid, template text,
             status text)
    ORDER BY p.part
    ON CONFLICT (turn_id, retry, part) DO NOTHING
    RETURNING created_at
"""


def _postgres_record_params(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON documents as `lossless_json` stores them (as the engine's JSON columns
    would), each a string inside the batch."""
    first = rows[0]
    return {
        "session_id": first["session_id"],
        "turn_id": first["turn_id"],
        "retry": first["retry"],
        "channel_id": first["channel_id"],
        "recipient": first["recipient"],
        "parts": json.dumps(
            [
                {
                    "id": str(row["id"]),
                    "part": row["part"],
                    "text": row["text"],
                    "options": _document(row["options"]),
                    "media_id": str(row["media_id"]) if row["media_id"] else None,
                    "template": _document(row["template"]),
                    "status": str(row["status"]),
                }
                for row in rows
            ]
        ),
    }


def _document(value: dict[str, Any] | None) -> str | None:
    return None if value is None else lossless_json.dumps(value)


async def replies_of(turn_id: uuid.UUID, *, retry: int, db: AsyncSession) -> list[OutboundMessage]:
    """The reply parts try `retry` of the turn recorded."""
    result = await db.scalars(
        select(OutboundMessage)
        .where(OutboundMessage.turn_id == turn_id, OutboundMessage.retry == retry)
        .order_by(OutboundMessage.part)
    )
    return list(result)


async def last_offered_options(session_id: uuid.UUID, *, db: AsyncSession) -> OfferedOptions | None:
    """The options the session's latest message to the user offered, if it offered any:
    what a bare number the user answers next refers to."""
    latest = await db.scalar(
        select(OutboundMessage.options)
        .where(OutboundMessage.session_id == session_id)
        .order_by(OutboundMessage.created_at.desc(), OutboundMessage.part.desc())
        .limit(1)
    )
    return OfferedOptions.from_json(latest)


async def reached_user_before(turn_id: uuid.UUID, *, retry: int, db: AsyncSession) -> bool:
    """Whether a try of the turn before `retry` got a reply to the user (its fallback)."""
    reached = [
        OutboundStatus.QUEUED,
        OutboundStatus.SENT,
        OutboundStatus.DELIVERED,
        OutboundStatus.READ,
        OutboundStatus.PLAYED,
    ]
    earlier = exists().where(
        OutboundMessage.turn_id == turn_id,
        OutboundMessage.retry < retry,
        OutboundMessage.status.in_(reached),
    )
    return bool(await db.scalar(select(earlier)))


async def mark_sent(
    outbound_id: uuid.UUID,
    *,
    provider_message_id: str,
    status: str,
    following: uuid.UUID | None = None,
    db: AsyncSession,
) -> None:
    """Record that the provider took `outbound_id` and, in the same statement, that
    `following` (the next part) is being sent. The status never moves back: a delivery
    status may have been recorded first. A send the provider answered as failed notes
    the conversation as needing attention (a second statement, on that status only)."""
    await run(
        db,
        _MARK_SENT,
        outbound_id=outbound_id,
        following=following,
        new_status=status,
        new_rank=STATUS_RANK.get(status, 1),
        provider_id=provider_message_id,
        now=datetime.now(UTC),
    )
    if status in NOT_DELIVERED:
        await note_attention(_session_of(outbound_id), db=db)


async def mark_sending(outbound_id: uuid.UUID, *, db: AsyncSession) -> None:
    """A part about to be sent that no earlier statement marked so (its turn resumed
    past it, or its last send was refused)."""
    await _move(outbound_id, OutboundStatus.PENDING, OutboundStatus.SENDING, db=db)


async def mark_refused(outbound_id: uuid.UUID, *, db: AsyncSession) -> None:
    """The provider answered a send with a refusal worth retrying (429, 5xx): the part
    did not go out, so its retry sends it without looking it up first."""
    await _move(outbound_id, OutboundStatus.SENDING, OutboundStatus.PENDING, db=db)


async def _move(
    outbound_id: uuid.UUID, old: OutboundStatus, new: OutboundStatus, *, db: AsyncSession
) -> None:
    await db.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == outbound_id, OutboundMessage.status == old)
        .values(status=new, updated_at=datetime.now(UTC))
    )


async def recorded_provider_id(outbound_id: uuid.UUID, *, db: AsyncSession) -> str | None:
    """The provider's id of a part, once its send or a delivery status recorded one."""
    return await db.scalar(
        select(OutboundMessage.provider_message_id).where(OutboundMessage.id == outbound_id)
    )


async def known_provider_ids(provider_message_ids: list[str], *, db: AsyncSession) -> set[str]:
    """Which of these provider ids some recorded part already has."""
    if not provider_message_ids:
        return set()
    result = await db.scalars(
        select(OutboundMessage.provider_message_id).where(
            OutboundMessage.provider_message_id.in_(provider_message_ids)
        )
    )
    return {found for found in result if found is not None}


@dataclass(frozen=True)
class NamedPart:
    """A delivery status naming one of our reply parts by its outbound id."""

    outbound_id: uuid.UUID
    provider_message_id: str
    address: str
    """The number the status came under: only a part sent from it takes the id."""


async def record_provider_ids(
    named: Sequence[NamedPart], *, provider: str, db: AsyncSession
) -> None:
    """The provider's ids from delivery statuses that carry our outbound id back (Meta's
    `biz_opaque_callback_data`), for parts still `sending` without one: a worker that
    died before recording its send finds the part sent. One statement for all of them;
    only a part of the number the status came under takes it (one number's credentials
    never speak for another's replies), and an id some other part already has is left
    alone."""
    if not named:
        return
    table = OutboundMessage.__table__
    other = table.alias("other")
    channel = select(Channel.id).where(
        Channel.provider == provider, Channel.address == bindparam("address")
    )
    statement = (
        update(OutboundMessage)
        .where(
            table.c.id == bindparam("outbound_id"),
            table.c.channel_id == channel.scalar_subquery(),
            table.c.status == OutboundStatus.SENDING,
            table.c.provider_message_id.is_(None),
            ~exists().where(other.c.provider_message_id == bindparam("provider_id")),
        )
        .values(provider_message_id=bindparam("provider_id"), updated_at=datetime.now(UTC))
    )
    connection = await db.connection()
    await connection.execute(
        statement,
        [
            {
                "outbound_id": part.outbound_id,
                "provider_id": part.provider_message_id,
                "address": part.address,
            }
            for part in named
        ],
    )


async def mark_send_failed(outbound_id: uuid.UUID, *, error: str, db: AsyncSession) -> None:
    """The provider refused the part for good: its conversation needs attention."""
    await db.execute(
        update(OutboundMessage)
        .where(OutboundMessage.id == outbound_id)
        .values(status=OutboundStatus.FAILED, error=error, updated_at=datetime.now(UTC))
    )
    await note_attention(_session_of(outbound_id), db=db)


def _session_of(outbound_id: uuid.UUID) -> ScalarSelect[uuid.UUID]:
    return (
        select(OutboundMessage.session_id)
        .where(OutboundMessage.id == outbound_id)
        .scalar_subquery()
    )


async def apply_delivery_status(
    provider_message_id: str,
    status: OutboundStatus,
    *,
    error: str | None,
    provider: str,
    address: str,
    db: AsyncSession,
) -> bool:
    """Advance a sent message's status from a provider callback, never backwards, and
    only a message sent from the channel at `address`: the number whose credentials
    verified the callback, so one number's credentials never speak for another's
    replies. One statement, by two unique indexes.

    Returns False when that channel sent no message with this provider id, or the update
    was stale. A part failed or not delivered notes its conversation as needing
    attention (a second statement, on that rare status only).
    """
    current_rank = _current_rank()
    channel = select(Channel.id).where(Channel.provider == provider, Channel.address == address)
    updated = await db.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.provider_message_id == provider_message_id,
            OutboundMessage.channel_id == channel.scalar_subquery(),
            current_rank < STATUS_RANK[status],
        )
        .values(status=status, error=error, updated_at=datetime.now(UTC))
        .returning(OutboundMessage.session_id)
    )
    applied = updated.first()
    if applied is not None and status in NOT_DELIVERED:
        await note_attention(applied.session_id, db=db)
    return applied is not None


def _current_rank() -> ColumnElement[int]:
    """A part's status as its rank in STATUS_RANK (0 for one not listed)."""
    return case(
        {str(state): rank for state, rank in STATUS_RANK.items()},
        value=OutboundMessage.status,
        else_=0,
    )


_THIS_PART = OutboundMessage.id == bindparam("outbound_id")
_MARK_SENT = (
    update(OutboundMessage)
    # Two plain parameters, not a list SQLAlchemy expands on every call: the statement is
    # then compiled once (`db.prepared`). `following` is NULL for a reply's last part.
    .where(OutboundMessage.id.in_([bindparam("outbound_id"), bindparam("following")]))
    .values(
        status=case(
            (_THIS_PART & (_current_rank() < bindparam("new_rank")), bindparam("new_status")),
            (_THIS_PART, OutboundMessage.status),
            (OutboundMessage.status == OutboundStatus.PENDING, OutboundStatus.SENDING),
            else_=OutboundMessage.status,
        ),
        provider_message_id=case(
            (_THIS_PART, bindparam("provider_id")), else_=OutboundMessage.provider_message_id
        ),
        sent_at=case((_THIS_PART, bindparam("now")), else_=OutboundMessage.sent_at),
        updated_at=bindparam("now"),
    )
)
