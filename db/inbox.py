"""The inbox: provider messages recorded before the webhook answers, deduplicated."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Text, bindparam, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from db import lossless_json
from db.core.clock import as_utc
from db.models import AgentSessionRow, Builder, Channel, InboundMessage, InboundStatus, Turn
from db.prepared import defer, run
from db.statements import StatementConnections
from db.upsert import insert_or_ignore

MAX_ID_CHARACTERS = 512
"""Ids and addresses are indexed (a Postgres index entry holds at most 2,704 bytes): the
webhooks refuse longer ones (Twilio's are 34 characters, Meta's under 100)."""


@dataclass(frozen=True)
class ReceivedMessage:
    """A provider message as a webhook read it, before it is routed and recorded.

    `recipient` is our address (a Twilio number, a Meta phone number id); `sender` is
    whom to reply to; `text` is already what the agent should read. `payload` keeps what
    the provider sent. Values are stored as they are: one holding what JSONB or a text
    column cannot goes through `storable_message` first.
    """

    provider: str
    provider_message_id: str
    recipient: str
    sender: str
    sender_wa_id: str | None
    sender_user_id: str | None
    profile_name: str | None
    kind: str
    text: str
    media: list[dict[str, str]]
    payload: dict[str, Any]


@dataclass(frozen=True)
class Recorded:
    """What became of one delivered message: its new inbox id and whether a builder owns
    its recipient; a redelivery of a message id already recorded is (None, False)."""

    inbound_id: int | None
    routed: bool

    @property
    def to_enqueue(self) -> bool:
        """A new message some builder will answer."""
        return self.enqueue_id is not None

    @property
    def enqueue_id(self) -> int | None:
        """The inbox id to enqueue when this is a new message some builder will answer."""
        return self.inbound_id if self.routed else None


async def record_inbound(
    messages: Sequence[ReceivedMessage], *, db: AsyncSession
) -> list[Recorded]:
    """Store deliveries in `db`'s transaction, routed to the channels owning their
    recipients; one outcome per message, in order.

    A message id seen before (in the inbox, or earlier in `messages`) is a redelivery.
    A message for an address no builder owns is kept as `unroutable`, so nothing is lost
    and the provider still gets its 200.
    """
    firsts = _first_deliveries(messages)
    if not firsts:
        inserted: dict[tuple[str, str], Recorded] = {}
    elif db.get_bind().dialect.name == "postgresql":
        connection = await db.connection()
        rows = await connection.exec_driver_sql(_POSTGRES_INSERT, _postgres_params(firsts))
        inserted = _inserted(rows)
    else:
        inserted = await _insert_portable(firsts, db=db)
    return _outcomes(messages, inserted)


async def record_inbound_at_once(
    messages: Sequence[ReceivedMessage], *, statements: StatementConnections
) -> list[Recorded]:
    """`record_inbound` on Postgres as one autocommit statement on a persistent
    connection: the receiver's hot path, with no pool checkout and no BEGIN/COMMIT."""
    firsts = _first_deliveries(messages)
    inserted = {}
    if firsts:
        inserted = _inserted(await statements.fetch(_POSTGRES_INSERT, _postgres_params(firsts)))
    return _outcomes(messages, inserted)


def _first_deliveries(messages: Sequence[ReceivedMessage]) -> list[ReceivedMessage]:
    firsts: dict[tuple[str, str], ReceivedMessage] = {}
    for message in messages:
        firsts.setdefault((message.provider, message.provider_message_id), message)
    return list(firsts.values())


def _outcomes(
    messages: Sequence[ReceivedMessage], inserted: dict[tuple[str, str], Recorded]
) -> list[Recorded]:
    """One outcome per message; only the first delivery of an id gets its row."""
    not_new = Recorded(inbound_id=None, routed=False)
    return [
        inserted.pop((message.provider, message.provider_message_id), not_new)
        for message in messages
    ]


_JSON_FIELDS = {"media", "payload"}
_FIELD_TYPES = {
    field.name: "jsonb" if field.name in _JSON_FIELDS else "text"
    for field in fields(ReceivedMessage)
}
_COLUMNS = ", ".join(_FIELD_TYPES)

# One statement of the same text for any batch size (so psycopg prepares it once): the
# batch arrives as one JSON document, the channel is looked up in the same pass, and
# ids follow arrival order (a conversation's messages are answered in id order).
_POSTGRES_INSERT = f"""
    INSERT INTO inbound_messages ({_COLUMNS}, channel_id, status, attempts)
    SELECT {", ".join(f"m.{name}" for name in _FIELD_TYPES)}, c.id,
           CASE WHEN c.id IS NULL THEN %(unroutable)s ELSE %(pending)s END, 0
    FROM ROWS FROM (
        json_to_recordset(%(batch)s::json)
        AS ({", ".join(f"{name} {type_}" for name, type_ in _FIELD_TYPES.items())})
    ) WITH ORDINALITY AS m({_COLUMNS}, arrival)
    LEFT JOIN channels AS c ON c.provider = m.provider AND c.address = m.recipient
    ORDER BY m.arrival
    ON CONFLICT (provider, provider_message_id) DO NOTHING
    RETURNING id, provider, provider_message_id, channel_id IS NOT NULL
"""


def _postgres_params(messages: list[ReceivedMessage]) -> dict[str, str]:
    return {
        "batch": json.dumps([vars(message) for message in messages]),
        "pending": InboundStatus.PENDING.value,
        "unroutable": InboundStatus.UNROUTABLE.value,
    }


def storable_message(message: ReceivedMessage) -> ReceivedMessage:
    """`message` as the inbox stores one holding what JSONB or a text column cannot: its
    JSON fields in `lossless_json`'s lossless form, its text fields in their plain form.
    The webhooks call it only for a request whose body says it may need it (rarely)."""
    stored: dict[str, Any] = {
        name: lossless_json.storable(value)
        if name in _JSON_FIELDS
        else lossless_json.plain_text(value)
        if isinstance(value, str)
        else value
        for name, value in vars(message).items()
    }
    return ReceivedMessage(**stored)


def _inserted(rows: Iterable[Sequence[Any]]) -> dict[tuple[str, str], Recorded]:
    return {
        (provider, message_id): Recorded(inbound_id=id_, routed=routed)
        for id_, provider, message_id, routed in rows
    }


async def _insert_portable(
    messages: list[ReceivedMessage], *, db: AsyncSession
) -> dict[tuple[str, str], Recorded]:
    addresses = {(message.provider, message.recipient) for message in messages}
    channels = {
        (provider, address): id_
        for provider, address, id_ in await db.execute(
            select(Channel.provider, Channel.address, Channel.id).where(
                tuple_(Channel.provider, Channel.address).in_(addresses)
            )
        )
    }
    rows = []
    for message in messages:
        channel_id = channels.get((message.provider, message.recipient))
        status = InboundStatus.PENDING if channel_id else InboundStatus.UNROUTABLE
        row = asdict(message)
        # As JSON text, like the Postgres batch: the values are already as stored.
        stored = {f"stored_{name}": json.dumps(row.pop(name)) for name in _JSON_FIELDS}
        rows.append({**row, **stored, "channel_id": channel_id, "status": status})
    statement = insert_or_ignore(InboundMessage, db=db).values(
        {name: bindparam(f"stored_{name}", type_=Text()) for name in _JSON_FIELDS}
    )
    result = await db.execute(
        statement.returning(
            InboundMessage.id,
            InboundMessage.provider,
            InboundMessage.provider_message_id,
            InboundMessage.channel_id,
        ),
        rows,
    )
    return {
        (provider, message_id): Recorded(inbound_id=id_, routed=channel_id is not None)
        for id_, provider, message_id, channel_id in result
    }


async def get_inbound(inbound_id: int, *, db: AsyncSession) -> InboundMessage | None:
    return await db.get(InboundMessage, inbound_id)


@dataclass(frozen=True)
class MessageForTask:
    """What a task needs of its message: whether it is still to answer, and who sent
    it on which builder's channel (`builder_id` None once the channel was removed)."""

    id: int
    status: str
    provider: str
    session_id: uuid.UUID | None
    builder_id: uuid.UUID | None
    sender: str
    sender_wa_id: str | None
    sender_user_id: str | None
    profile_name: str | None


_TASK_COLUMNS = [field.name for field in fields(MessageForTask) if field.name != "builder_id"]
"""The message's own columns a task reads: `MessageForTask`'s fields but the channel's."""
_MESSAGE_FOR_TASK = (
    select(
        *(getattr(InboundMessage, name) for name in _TASK_COLUMNS),
        Channel.builder_id,
    )
    .outerjoin(Channel, Channel.id == InboundMessage.channel_id)
    .where(InboundMessage.id == bindparam("inbound_id"))
)


async def message_for_task(inbound_id: int, *, db: AsyncSession) -> MessageForTask | None:
    """The message as its task sees it now, None when it does not exist: one statement,
    which in a unit of work from `db.prepared.autocommit_sessionmaker` needs no pool
    checkout and no transaction."""
    rows = await run(db, _MESSAGE_FOR_TASK, inbound_id=inbound_id)
    if not rows:
        return None
    *columns, builder_id = rows[0]
    return MessageForTask(**dict(zip(_TASK_COLUMNS, columns, strict=True)), builder_id=builder_id)


_KNOWN_SENDERS = (
    select(InboundMessage.channel_id, InboundMessage.sender)
    .where(InboundMessage.session_id == bindparam("the_session"))
    .distinct()
)
_ATTACH_LATECOMERS = (
    update(InboundMessage)
    .where(
        InboundMessage.session_id.is_(None),
        InboundMessage.status == InboundStatus.PENDING,
        tuple_(InboundMessage.channel_id, InboundMessage.sender).in_(_KNOWN_SENDERS),
    )
    .values(session_id=bindparam("the_session"))
)


_JOIN_SESSION = (
    update(InboundMessage)
    .where(InboundMessage.id == bindparam("inbound_id"))
    .values(session_id=bindparam("the_session"))
)


async def join_session(inbound_id: int, session_id: uuid.UUID, *, db: AsyncSession) -> None:
    """Message `inbound_id` belongs to conversation `session_id` from now on (written
    with the transaction's next statement), and so do its sender's later messages (see
    `attach_latecomers`)."""
    await defer(db, _JOIN_SESSION, inbound_id=inbound_id, the_session=session_id)


async def attach_latecomers(session_id: uuid.UUID, *, db: AsyncSession) -> None:
    """Attach messages that arrived from this conversation's sender since it was last
    looked at, before their own tasks ran, so the next turn can include them."""
    await defer(db, _ATTACH_LATECOMERS, the_session=session_id)


@dataclass(frozen=True)
class Arrivals:
    """A conversation's pending messages, (id, received_at) in arrival order; `retried`
    when some of them belong to a turn an operator retried (that turn answers them);
    `rate_filled_at`: when the turn that used up the sender's rate started (the rate's
    `n`-th newest since the window began), None while the sender is under it."""

    messages: list[tuple[int, datetime]]
    retried: bool
    rate_filled_at: datetime | None = None


_TURNS_IN_WINDOW = (
    select(
        Turn.created_at,
        func.row_number().over(order_by=Turn.created_at.desc()).label("newness"),
    )
    .where(Turn.session_id == bindparam("session_id"), Turn.created_at >= bindparam("since"))
    .subquery()
)
_RATE_FILLED_AT = (
    select(_TURNS_IN_WINDOW.c.created_at)
    .where(
        _TURNS_IN_WINDOW.c.newness
        == func.coalesce(Builder.turns_per_minute, bindparam("default_rate"))
    )
    .scalar_subquery()
)
_PENDING_ARRIVALS = (
    select(
        InboundMessage.id,
        InboundMessage.received_at,
        InboundMessage.turn_id,
        _RATE_FILLED_AT,
    )
    .join(AgentSessionRow, AgentSessionRow.id == InboundMessage.session_id)
    .join(Builder, Builder.id == AgentSessionRow.builder_id)
    .where(
        InboundMessage.session_id == bindparam("session_id"),
        InboundMessage.status == InboundStatus.PENDING,
        AgentSessionRow.paused_at.is_(None),
    )
    .order_by(InboundMessage.id)
)


async def pending_arrivals(
    session_id: uuid.UUID,
    *,
    rate_since: datetime | None = None,
    default_rate: int = 0,
    db: AsyncSession,
) -> Arrivals:
    """Pending messages of a conversation; none while an operator has paused it (its
    messages wait for a resume). The builder's rate (else `default_rate` turns a minute)
    and whether the turns started since `rate_since` fill it come in the same query, so
    deciding whether a turn may start costs no extra statement."""
    rows = await run(
        db,
        _PENDING_ARRIVALS,
        session_id=session_id,
        since=rate_since or datetime.now(UTC),
        default_rate=default_rate,
    )
    filled = rows[0][3] if rows else None
    return Arrivals(
        messages=[(row[0], as_utc(row[1])) for row in rows],
        retried=any(row[2] is not None for row in rows),
        rate_filled_at=None if filled is None else as_utc(filled),
    )


async def fail_inbound(inbound_id: int, *, error: str, db: AsyncSession) -> None:
    """Close a message that cannot be answered, keeping the reason."""
    await db.execute(
        update(InboundMessage)
        .where(InboundMessage.id == inbound_id)
        .values(status=InboundStatus.FAILED, error=error, processed_at=datetime.now(UTC))
    )


def status_in(statuses: Sequence[str]) -> ColumnElement[bool]:
    """`status IN (…)` with the statuses written into the SQL, not bound as parameters:
    a plan Postgres caches for any parameter values (psycopg prepares a statement a
    connection runs often) can then still prove the predicate of the partial index
    `ix_inbound_messages_unanswered`, and read only the unanswered messages."""
    return InboundMessage.status.in_(
        bindparam(
            "statuses", [str(status) for status in statuses], expanding=True, literal_execute=True
        )
    )


async def claim_stranded(*, older_than: datetime, limit: int, db: AsyncSession) -> list[int]:
    """Routable messages still unanswered since `older_than` whose conversation nobody
    holds: their task was never published (broker down) or was lost. Marks them
    enqueued now, so concurrent or later sweeps skip them for another period."""
    now = datetime.now(UTC)
    stranded = (
        select(InboundMessage.id)
        .outerjoin(AgentSessionRow, AgentSessionRow.id == InboundMessage.session_id)
        .where(
            status_in([InboundStatus.PENDING, InboundStatus.PROCESSING]),
            InboundMessage.channel_id.is_not(None),
            func.coalesce(InboundMessage.enqueued_at, InboundMessage.received_at) < older_than,
            or_(
                AgentSessionRow.lease_expires_at.is_(None),
                AgentSessionRow.lease_expires_at < now,
            ),
        )
        .order_by(InboundMessage.id)
        .limit(limit)
        .with_for_update(of=InboundMessage, skip_locked=True)
    )
    ids = list(await db.scalars(stranded))
    if ids:
        await db.execute(
            update(InboundMessage).where(InboundMessage.id.in_(ids)).values(enqueued_at=now)
        )
    return ids
