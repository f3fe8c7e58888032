"""Initial schema: builders, channels, sessions, session_items, turns, inbox, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import uuid
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
INBOX_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _uuid_pk() -> sa.Column[uuid.UUID]:
    """Postgres generates ids itself; SQLite rows get theirs from the application."""
    is_postgres = op.get_bind().dialect.name == "postgresql"
    default = sa.text("gen_random_uuid()") if is_postgres else None
    return sa.Column("id", sa.Uuid(), primary_key=True, server_default=default)


def _timestamp(name: str, *, default_now: bool = False) -> sa.Column[datetime]:
    if default_now:
        return sa.Column(
            name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        )
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.create_table(
        "builders",
        _uuid_pk(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=False),
        sa.Column("model", sa.String(100), nullable=False),
        _timestamp("created_at", default_now=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_builders")),
    )
    op.create_table(
        "channels",
        _uuid_pk(),
        sa.Column("builder_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        _timestamp("created_at", default_now=True),
        sa.CheckConstraint("provider IN ('twilio', 'meta')", name=op.f("ck_channels_provider")),
        sa.ForeignKeyConstraint(
            ["builder_id"],
            ["builders.id"],
            name=op.f("fk_channels_builder_id_builders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("provider", "address", name=op.f("uq_channels_provider_address")),
    )
    op.create_index(op.f("ix_channels_builder_id"), "channels", ["builder_id"])
    op.create_table(
        "sessions",
        _uuid_pk(),
        sa.Column("builder_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("external_id", sa.String(128), nullable=False),
        _timestamp("created_at", default_now=True),
        _timestamp("updated_at", default_now=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        _timestamp("lease_expires_at"),
        sa.ForeignKeyConstraint(
            ["builder_id"],
            ["builders.id"],
            name=op.f("fk_sessions_builder_id_builders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint(
            "builder_id",
            "platform",
            "external_id",
            name=op.f("uq_sessions_builder_id_platform_external_id"),
        ),
    )
    op.create_table(
        "session_items",
        _uuid_pk(),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("item_data", JSON_DOCUMENT, nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        _timestamp("created_at", default_now=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_items_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_items")),
        sa.UniqueConstraint("session_id", "sequence", name="session_items_seq_unique"),
    )
    op.create_index("session_items_seq_idx", "session_items", ["session_id", "sequence"])
    op.create_table(
        "turns",
        _uuid_pk(),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _timestamp("input_saved_at"),
        sa.Column("input_sequence", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at", default_now=True),
        _timestamp("finished_at"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_turns_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_turns")),
    )
    op.create_index(op.f("ix_turns_session_id"), "turns", ["session_id"])
    op.create_table(
        "inbound_messages",
        sa.Column("id", INBOX_ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("provider_message_id", sa.String(128), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(64), nullable=False),
        sa.Column("profile_name", sa.String(200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False, server_default=""),
        sa.Column("media", JSON_DOCUMENT, nullable=False),
        sa.Column("payload", JSON_DOCUMENT, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("turn_id", sa.Uuid(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("received_at", default_now=True),
        _timestamp("processed_at"),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_inbound_messages_channel_id_channels"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_inbound_messages_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["turns.id"],
            name=op.f("fk_inbound_messages_turn_id_turns"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint(
            "provider",
            "provider_message_id",
            name=op.f("uq_inbound_messages_provider_provider_message_id"),
        ),
    )
    op.create_index(
        "ix_inbound_messages_pending", "inbound_messages", ["session_id", "status", "id"]
    )
    op.create_index(
        "ix_inbound_messages_conversation",
        "inbound_messages",
        ["channel_id", "sender", "status"],
    )
    op.create_index(op.f("ix_inbound_messages_turn_id"), "inbound_messages", ["turn_id"])
    op.create_table(
        "outbound_messages",
        _uuid_pk(),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("turn_id", sa.Uuid(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Uuid(), nullable=True),
        sa.Column("recipient", sa.String(64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("provider_message_id", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        _timestamp("created_at", default_now=True),
        _timestamp("sent_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_outbound_messages_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["turns.id"],
            name=op.f("fk_outbound_messages_turn_id_turns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["channels.id"],
            name=op.f("fk_outbound_messages_channel_id_channels"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_messages")),
        sa.UniqueConstraint("turn_id", "part", name=op.f("uq_outbound_messages_turn_id_part")),
        sa.UniqueConstraint(
            "provider_message_id", name=op.f("uq_outbound_messages_provider_message_id")
        ),
    )
    op.create_index(op.f("ix_outbound_messages_session_id"), "outbound_messages", ["session_id"])


def downgrade() -> None:
    op.drop_table("outbound_messages")
    op.drop_table("inbound_messages")
    op.drop_table("turns")
    op.drop_table("session_items")
    op.drop_table("sessions")
    op.drop_table("channels")
    op.drop_table("builders")
