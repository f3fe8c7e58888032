"""The media users send (voice notes, photos, documents): fetched once by the worker and
kept in the database, deleted with their conversation or inbox message.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

InboxId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "media",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("inbound_message_id", InboxId, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column("duration_seconds", sa.Float(), nullable=True),
        sa.Column("transcript", sa.Text(), nullable=True),
        sa.Column("extracted_text", sa.Text(), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_media_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["inbound_message_id"],
            ["inbound_messages.id"],
            name=op.f("fk_media_inbound_message_id_inbound_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media")),
        sa.UniqueConstraint(
            "inbound_message_id", "position", name=op.f("uq_media_inbound_message_id_position")
        ),
    )
    op.create_index(op.f("ix_media_session_id"), "media", ["session_id"])
    op.create_index(op.f("ix_media_created_at"), "media", ["created_at"])
    if op.get_bind().dialect.name == "postgresql":
        # Photos, voice notes and PDFs are compressed already: TOAST stores them out of
        # line without trying to compress them again.
        op.execute("ALTER TABLE media ALTER COLUMN content SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_index(op.f("ix_media_created_at"), table_name="media")
    op.drop_index(op.f("ix_media_session_id"), table_name="media")
    op.drop_table("media")
