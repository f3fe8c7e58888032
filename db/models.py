"""The schema: builders and their channels, agent sessions and their items, the inbox
and the media its messages carried, conversation turns and outbound replies.

Tables are created by the Alembic migrations in `db/migrations`; these classes mirror
them for queries. Types are chosen to work on Postgres (production) and SQLite (the
embedded demo): JSON becomes JSONB on Postgres.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONDocument = JSON().with_variant(JSONB(), "postgresql")


def outside_text(sqlite_length: int) -> TypeEngine[str]:
    """A value providers or users send (names, numbers, ids): `text` on Postgres, as long
    as they send it (ids and addresses are bounded where they are parsed, to stay
    indexable). SQLite keeps the VARCHAR its first migration declared: it never enforces
    a length, and changing a column's type there means rebuilding its table."""
    return Text().with_variant(String(sqlite_length), "sqlite")


# SQLite only auto-increments an INTEGER PRIMARY KEY.
InboxId = BigInteger().with_variant(Integer(), "sqlite")
# Postgres searches chunks by this column; SQLite by its FTS5 table (the column stays empty).
SearchVector = TSVECTOR().with_variant(Text(), "sqlite")


class InboundStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    PROCESSED = "processed"
    UNROUTABLE = "unroutable"
    FAILED = "failed"


UNANSWERED_STATUSES = text("status IN ('pending', 'processing', 'failed')")
"""The inbox rows operators and the metrics scrape watch (a partial index covers them)."""

PAUSED = text("paused_at IS NOT NULL")
"""A conversation an operator has taken over (few are: a partial index lists them)."""

UNSUPPORTED_KIND = "unsupported"
"""`inbound_messages.kind` of a message the agent cannot use (it gets the canned reply)."""

REACTION_KIND = "reaction"
RECORDED_ONLY_KINDS = frozenset({REACTION_KIND, "revoke", "edit", "system", "call_permission"})
"""Kinds that are kept in the conversation but not answered: a turn of only these runs
no agent and sends nothing (a builder's `reactions_as_input` makes reactions answered)."""


class TurnStatus(StrEnum):
    RUNNING = "running"
    REPLIED = "replied"
    FAILED = "failed"
    RETRIED = "retried"
    """Failed, then its messages were handed to a new turn by an operator (before a retry
    reopened the same turn; kept for turns retried so)."""


class OutboundStatus(StrEnum):
    """Our own `pending` (never handed to the provider, or refused for now), `sending`
    (handed over, or about to be: it may have reached the user) and `sent`, then the
    provider's delivery states."""

    PENDING = "pending"
    SENDING = "sending"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    """A voice note the user listened to: Meta's step after `read`."""
    FAILED = "failed"
    UNDELIVERED = "undelivered"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


def _created_at() -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


class Builder(Base):
    """A business running an agent: its instructions, model and model settings.

    `history_window` (session items sent to the model) overrides `HISTORY_WINDOW` and
    `turns_per_minute` (per sender) overrides `SENDER_TURNS_PER_MINUTE` when set;
    `reactions_as_input` makes a user's emoji reaction a message the agent answers;
    `voice_replies` answers a turn with a voice note in it by a voice note;
    `search_language` is the Postgres text search configuration of its documents.
    """

    __tablename__ = "builders"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(100))
    unsupported_reply: Mapped[str | None] = mapped_column(Text)
    fallback_reply: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    temperature: Mapped[float | None] = mapped_column(Float)
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    history_window: Mapped[int | None] = mapped_column(Integer)
    search_language: Mapped[str] = mapped_column(
        String(64), default="english", server_default="english"
    )
    turns_per_minute: Mapped[int | None] = mapped_column(Integer)
    reactions_as_input: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    voice_replies: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")


class Document(Base):
    """A file a builder gave its agent to answer from; `name` is its source name."""

    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("builder_id", "name"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    builder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("builders.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    characters: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = _created_at()


class DocumentChunk(Base):
    """A passage of a document, what `search_documents` finds and returns."""

    __tablename__ = "document_chunks"
    __table_args__ = (Index("ix_document_chunks_search", "search_vector", postgresql_using="gin"),)

    id: Mapped[int] = mapped_column(InboxId, primary_key=True, autoincrement=True)
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    builder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("builders.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    search_vector: Mapped[str | None] = mapped_column(SearchVector)


class Channel(Base):
    """A WhatsApp number of a builder: a Twilio `whatsapp:+…` address or a Meta phone id.

    `credentials` holds the provider credentials of this number when it has its own
    (else the global ones apply), as a Fernet token: never stored or shown in clear.
    """

    __tablename__ = "channels"
    __table_args__ = (
        UniqueConstraint("provider", "address"),
        CheckConstraint("provider IN ('twilio', 'meta')", name="provider"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    builder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("builders.id", ondelete="CASCADE"), index=True
    )
    provider: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()
    credentials: Mapped[str | None] = mapped_column(Text)


class AgentSessionRow(Base):
    """One conversation of a builder's agent with one user on one platform.

    `external_id` is the user's business-scoped id when WhatsApp gives one, else their
    number; both are kept, with the profile name, as last seen.
    `next_sequence` is the `sequence` the next stored item gets (kept by
    `DatabaseSession` in the statement that stores items, so it is never read apart).
    `lease_token`/`lease_expires_at` serialize the conversation across workers.
    `paused_at` is set while a human has taken over: messages are stored, not answered.
    `operator_seen_at` is when an operator last looked at the conversation (its unread count).
    """

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("builder_id", "platform", "external_id"),
        Index("ix_sessions_builder_id_updated_at", "builder_id", "updated_at", "id"),
        Index("ix_sessions_builder_id_next_sequence", "builder_id", "next_sequence", "id"),
        Index("ix_sessions_wa_id", "wa_id"),
        Index(
            "ix_sessions_builder_id_paused",
            "builder_id",
            postgresql_where=PAUSED,
            sqlite_where=PAUSED,
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    builder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("builders.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(outside_text(160))
    display_name: Mapped[str | None] = mapped_column(outside_text(200))
    wa_id: Mapped[str | None] = mapped_column(outside_text(32))
    user_id: Mapped[str | None] = mapped_column(outside_text(160))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()
    next_sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    lease_token: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    operator_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ActivityDay(Base):
    """A builder's activity on one UTC day, rolled up from settled rows by the worker's
    sweeper (`db.activity.roll_up_activity`): its users' and agent's messages, its bot
    turns and their failures, its operators' failed turns."""

    __tablename__ = "activity_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    builder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("builders.id", ondelete="CASCADE"), primary_key=True
    )
    messages: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    turns: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    operator_failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class ReplyTime(Base):
    """How many of a builder's bot turns of a UTC day replied in `tenths` tenths of a
    second, rolled up with `ActivityDay`: a median is not additive, this histogram is."""

    __tablename__ = "reply_times"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    builder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("builders.id", ondelete="CASCADE"), primary_key=True
    )
    tenths: Mapped[int] = mapped_column(Integer, primary_key=True)
    turns: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class SessionCount(Base):
    """How many sessions a builder had made before the watermark, rolled up with
    `ActivityDay` (sessions are deleted only with their builder)."""

    __tablename__ = "session_counts"

    builder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("builders.id", ondelete="CASCADE"), primary_key=True
    )
    sessions: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class ActivityRollup(Base):
    """The one row saying up to when `activity_days`, `reply_times` and `session_counts`
    hold what is stored (rows made before `rolled_up_to`); NULL before the first roll-up."""

    __tablename__ = "activity_rollup"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    rolled_up_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AttentionCandidate(Base):
    """A conversation that may need attention because its latest turn failed or a part of
    its latest reply was not delivered: noted by whatever makes either happen (rare
    events), re-checked by `db.attention`'s rule whenever read, and forgotten by the
    sweeper once the rule no longer holds. The "needs attention" list reads these rows
    instead of evaluating the rule on every one of a builder's sessions."""

    __tablename__ = "session_attention"
    __table_args__ = (Index("ix_session_attention_builder_id", "builder_id", "session_id"),)

    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
    )
    builder_id: Mapped[uuid.UUID] = mapped_column(Uuid, nullable=False)
    """The session's builder (which never changes): the list reads one builder's rows."""
    noted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    """When it was last noted: the sweeper forgets only rows noted a while ago, so a
    failure noted while it looks is never lost."""


class SessionItem(Base):
    """One SDK item of a session's history, stored exactly as the runner produced it."""

    __tablename__ = "session_items"
    __table_args__ = (
        UniqueConstraint("session_id", "sequence", name="session_items_seq_unique"),
        Index("ix_session_items_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
    )
    item_data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = _created_at()


class ArchivedItem(Base):
    """An item a cleared memory forgot, kept for the operator's transcript (the agent
    never reads it); `cleared_at` groups the items of one clearing."""

    __tablename__ = "session_item_archive"
    __table_args__ = (
        Index(
            "ix_session_item_archive_session_id_cleared_at", "session_id", "cleared_at", "sequence"
        ),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False
    )
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    item_data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    cleared_at: Mapped[datetime] = _created_at()


class ApiToken(Base):
    """A builder's API token for the dashboard and the JSON API; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = _uuid_pk()
    builder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("builders.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DashboardSignIn(Base):
    """A browser signed in to the dashboard. Its cookie holds only a random secret; this
    row holds the secret's SHA-256, who signed in (a builder through one of its tokens, or
    the admin) and until when. Signing out revokes the row. An admin's row carries
    `admin_key`, an HMAC of `ADMIN_TOKEN` under the cookie's signing secret: once the
    token changes, no admin row matches."""

    __tablename__ = "dashboard_sign_ins"

    id: Mapped[uuid.UUID] = _uuid_pk()
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    builder_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("builders.id", ondelete="CASCADE")
    )
    token_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE")
    )
    admin_key: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Turn(Base):
    """One agent run answering one or more inbound messages of a session.

    `input_saved_at` is set in the same transaction that stores the user input in
    `session_items`, so a retried turn knows to continue with `input=[]`. A turn
    `by_operator` is a human's reply from the dashboard (`input_sequence`: its item).
    A failed turn an operator retries is reopened: `retries` counts those, `attempts`
    starts again for each (so `TURN_MAX_ATTEMPTS` applies to each), and
    `retry_from_sequence` is where the history stood when the latest retry first ran:
    an answer stored from there on is that retry's, one before it an earlier try's.
    `model`, `latency_ms` and the token counts describe its latest agent run.
    """

    __tablename__ = "turns"
    __table_args__ = (
        Index("ix_turns_session_id_created_at", "session_id", "created_at"),
        Index("ix_turns_session_id_input_sequence", "session_id", "input_sequence"),
        Index("ix_turns_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    input_saved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    input_sequence: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    by_operator: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_from_sequence: Mapped[int | None] = mapped_column(Integer)
    model: Mapped[str | None] = mapped_column(String(100))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    failed_tries: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONDocument)
    """Each try that failed for good before an operator's retry: `{"at", "error"}`."""


class InboundMessage(Base):
    """The inbox: every accepted provider message, recorded before the webhook answers."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        UniqueConstraint("provider", "provider_message_id"),
        Index("ix_inbound_messages_pending", "session_id", "status", "id"),
        Index("ix_inbound_messages_session_id_received_at", "session_id", "received_at"),
        Index("ix_inbound_messages_received_at", "received_at"),
        Index("ix_inbound_messages_conversation", "channel_id", "sender", "status"),
        Index(
            "ix_inbound_messages_unanswered",
            "status",
            "received_at",
            postgresql_where=UNANSWERED_STATUSES,
            sqlite_where=UNANSWERED_STATUSES,
        ),
    )

    id: Mapped[int] = mapped_column(InboxId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(16))
    provider_message_id: Mapped[str] = mapped_column(outside_text(128))
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("channels.id", ondelete="SET NULL")
    )
    recipient: Mapped[str] = mapped_column(outside_text(64))
    sender: Mapped[str] = mapped_column(outside_text(160))
    sender_wa_id: Mapped[str | None] = mapped_column(outside_text(32))
    sender_user_id: Mapped[str | None] = mapped_column(outside_text(160))
    profile_name: Mapped[str | None] = mapped_column(outside_text(200))
    kind: Mapped[str] = mapped_column(String(32), default="text")
    text: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    status: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL")
    )
    turn_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("turns.id", ondelete="SET NULL"), index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = _created_at()
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class OutboundMessage(Base):
    """One message sent (or to be sent) to a user; `(turn_id, retry, part)` is its
    idempotency key (`retry`: which try of its turn recorded it, 0 the first). `options`:
    the choices a reply's last part offers (`db.offered_options.OfferedOptions.as_json`)."""

    __tablename__ = "outbound_messages"
    __table_args__ = (UniqueConstraint("turn_id", "retry", "part"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    turn_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"))
    retry: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    part: Mapped[int] = mapped_column(Integer)
    channel_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("channels.id", ondelete="SET NULL")
    )
    recipient: Mapped[str] = mapped_column(outside_text(160))
    text: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    media_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    template: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    """The approved template this part sent (`db.templates.FilledTemplate.as_json`): its
    `text` is the template's body with the variables filled, what the user saw."""
    provider_message_id: Mapped[str | None] = mapped_column(outside_text(128), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MessageTemplate(Base):
    """An approved WhatsApp template a builder may send outside the 24-hour window: a
    Meta template (by `name` and `language`, synced from the business account) or a
    Twilio Content template (by `content_sid`). `body` holds its text with `{{1}}`,
    `{{2}}`… where the variables go."""

    __tablename__ = "message_templates"
    __table_args__ = (
        UniqueConstraint("builder_id", "provider", "name", "language"),
        CheckConstraint("provider IN ('twilio', 'meta')", name="provider"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    builder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("builders.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    content_sid: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = _created_at()


class Media(Base):
    """A file a user sent (a voice note, a photo, a document), fetched from the provider
    once and kept for the worker, the dashboard and every host; or one we sent (a spoken
    reply), made once and sent from here.

    A user's file belongs to the inbox message that carried it (`position`: which of its
    attachments); ours has none. Each belongs to its conversation: deleting the
    conversation or the inbox message deletes it, and the sweeper deletes it after
    `MEDIA_RETENTION_DAYS`. `content` holds the bytes (the
    database content store; another store keeps them elsewhere and leaves it empty).
    `transcript` is what a voice note says, `extracted_text` what a document reads.
    """

    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("inbound_message_id", "position"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"), index=True
    )
    inbound_message_id: Mapped[int | None] = mapped_column(
        InboxId, ForeignKey("inbound_messages.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(128))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(Text)
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    transcript: Mapped[str | None] = mapped_column(Text)
    extracted_text: Mapped[str | None] = mapped_column(Text)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False, index=True
    )
