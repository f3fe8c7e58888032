"""What an open conversation page asks every two seconds, as one statement: one round
trip, every part by an index, and nothing read past the sign-in check for a stranger.

Its common tables check the cookie's sign-in (`sign_in_query`, by the unique
`secret_hash`) unless the principal is known already (a bearer token), find the session
by its primary key if that principal may see it, and then read, for it only: the items
after the page's newest (`session_items_seq_unique`), the turns around them
(`ix_turns_session_id_input_sequence`), those turns' reply parts (`(turn_id, retry,
part)`) and inbox rows (`ix_inbound_messages_turn_id`), the conversation's files when
there are new items (`ix_media_session_id`), and the messages not in the history yet
(`ix_inbound_messages_pending`). Each row comes back as one JSON object tagged with its
part (`db.json_rows`). On Postgres the same statement marks new items as seen (a
data-modifying common table); SQLite, the embedded demo's, cannot, so there it is a
second statement, only when there are new items.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CTE,
    Select,
    String,
    Uuid,
    cast,
    exists,
    func,
    literal,
    literal_column,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from db.attention import latest_turn_status
from db.dashboard_queries import in_input_order, mark_seen
from db.json_rows import from_json_row, json_row
from db.media import MediaInfo, info_of
from db.models import (
    AgentSessionRow,
    InboundMessage,
    Media,
    OutboundMessage,
    SessionItem,
    Turn,
)
from db.sign_ins import SignedIn, SignInSecret, sign_in_query
from db.takeover import unstored_messages_query


@dataclass(frozen=True)
class LiveUpdate:
    """What changed on a conversation page since its newest item."""

    session: AgentSessionRow | None
    """None: no such session, or not one the principal may see (nothing else is read)."""
    latest_status: str | None
    """Its latest turn's status (for its `session_status`)."""
    items: list[SessionItem]
    """After the page's newest, in order, up to the limit."""
    more: bool
    """More items follow the limit."""
    turns: list[Turn]
    """The turns those items belong to, in input order (as `turns_around` finds them)."""
    replies: list[OutboundMessage]
    """Those turns' reply parts, of every try."""
    messages: list[InboundMessage]
    """Those turns' inbox rows."""
    files: list[MediaInfo]
    """The conversation's files, when there are new items."""
    waiting: list[InboundMessage]
    """Its messages not yet in the history, in arrival order."""


async def live_update(
    session_id: uuid.UUID,
    *,
    asker: SignInSecret | SignedIn,
    after: int,
    limit: int,
    db: AsyncSession,
) -> LiveUpdate | None:
    """What is new in `session_id` after item `after`, for `asker` (a cookie's sign-in,
    checked here, or a principal already known); None when the sign-in does not stand.
    New items shown count as seen."""
    dialect = db.get_bind().dialect.name
    now = datetime.now(UTC)
    parts = _Parts(session_id, asker, after, limit)
    statement = union_all(*(part.rows(dialect) for part in parts.all()))
    if dialect == "postgresql":
        statement = statement.add_cte(parts.mark_seen(now))
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, data in await db.execute(statement):
        found[name].append(data)
    if not found["asker"]:
        return None
    seen = found["session"]
    items = sorted(
        (from_json_row(SessionItem, data) for data in found["item"]),
        key=lambda item: item.sequence,
    )
    if items and dialect != "postgresql":
        await mark_seen(session_id, db=db)
    return LiveUpdate(
        session=from_json_row(AgentSessionRow, seen[0]) if seen else None,
        latest_status=seen[0]["latest_status"] if seen else None,
        items=items[:limit],
        more=len(items) > limit,
        turns=in_input_order(from_json_row(Turn, data) for data in found["turn"]),
        replies=[from_json_row(OutboundMessage, data) for data in found["reply"]],
        messages=[from_json_row(InboundMessage, data) for data in found["message"]],
        files=[info_of(from_json_row(Media, data)) for data in found["file"]],
        waiting=sorted(
            (from_json_row(InboundMessage, data) for data in found["waiting"]),
            key=lambda message: message.id,
        ),
    )


@dataclass(frozen=True)
class _Part:
    """One kind of row of the statement: its tag and the common table it comes from."""

    name: str
    source: CTE

    def rows(self, dialect: str) -> Select[Any]:
        return select(
            literal_column(f"'{self.name}'", String).label("part"),
            json_row(self.source.c, dialect=dialect).label("data"),
        ).select_from(self.source)


class _Parts:
    """The statement's common tables: nothing past the session for a stranger, nothing
    about new items when there are none (each gate a one-time filter)."""

    def __init__(
        self, session_id: uuid.UUID, asker: SignInSecret | SignedIn, after: int, limit: int
    ) -> None:
        self.session_id = session_id
        if isinstance(asker, SignInSecret):
            who = sign_in_query(asker.secret, admin_key=asker.admin_key)
        else:
            known = literal(asker.builder_id, Uuid) if asker.builder_id else null()
            who = select(cast(known, Uuid).label("builder_id"))
        self.asker = who.cte("asker")
        asker_sees = (self.asker.c.builder_id.is_(None)) | (
            self.asker.c.builder_id == AgentSessionRow.builder_id
        )
        self.session = (
            select(AgentSessionRow, latest_turn_status().label("latest_status"))
            .where(AgentSessionRow.id == session_id, exists().where(asker_sees))
            .cte("visible_session")
        )
        visible = exists(select(self.session.c.id))
        self.items = (
            select(SessionItem)
            .where(SessionItem.session_id == session_id, SessionItem.sequence > after, visible)
            .order_by(SessionItem.sequence)
            .limit(limit + 1)
            .cte("new_items")
        )
        new = exists(select(self.items.c.id))
        first = select(func.min(self.items.c.sequence)).scalar_subquery()
        last = select(func.max(self.items.c.sequence)).scalar_subquery()
        self.owner = (
            select(Turn)
            .where(Turn.session_id == session_id, Turn.input_sequence < first, new)
            .order_by(Turn.input_sequence.desc(), Turn.created_at.desc())
            .limit(1)
            .cte("owner_turn")
        )
        self.inside = (
            select(Turn)
            .where(
                Turn.session_id == session_id,
                Turn.input_sequence >= first,
                Turn.input_sequence <= last,
                new,
            )
            .cte("inside_turns")
        )
        turn_ids = union_all(select(self.owner.c.id), select(self.inside.c.id))
        self.replies = (
            select(OutboundMessage).where(OutboundMessage.turn_id.in_(turn_ids)).cte("replies")
        )
        self.messages = (
            select(InboundMessage).where(InboundMessage.turn_id.in_(turn_ids)).cte("turn_messages")
        )
        self.files = (
            select(*(column for column in Media.__table__.c if column.key != "content"))
            .where(Media.session_id == session_id, new)
            .cte("files")
        )
        self.waiting = (
            unstored_messages_query(session_id).where(visible).order_by(None).cte("waiting")
        )

    def all(self) -> list[_Part]:
        return [
            _Part("asker", self.asker),
            _Part("session", self.session),
            _Part("item", self.items),
            _Part("turn", self.owner),
            _Part("turn", self.inside),
            _Part("reply", self.replies),
            _Part("message", self.messages),
            _Part("file", self.files),
            _Part("waiting", self.waiting),
        ]

    def mark_seen(self, now: datetime) -> CTE:
        """New items shown count as seen (`mark_seen`), in the same statement."""
        return (
            update(AgentSessionRow)
            .where(
                AgentSessionRow.id == self.session_id,
                exists(select(self.session.c.id)),
                exists(select(self.items.c.id)),
            )
            .values(operator_seen_at=now)
            .returning(AgentSessionRow.id)
            .cte("seen")
        )
