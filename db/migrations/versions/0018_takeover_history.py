"""Take-over keeps what an operator needs to see: each failed try of a turn (so a retry
shows its attempts), and the items a cleared memory forgot (the operator's transcript).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONDocument = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("turns") as turns:
        turns.add_column(sa.Column("failed_tries", JSONDocument, nullable=True))
    op.create_table(
        "session_item_archive",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("item_data", JSONDocument, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "cleared_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_item_archive_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_item_archive")),
    )
    op.create_index(
        "ix_session_item_archive_session_id_cleared_at",
        "session_item_archive",
        ["session_id", "cleared_at", "sequence"],
    )


def downgrade() -> None:
    op.drop_index("ix_session_item_archive_session_id_cleared_at", "session_item_archive")
    op.drop_table("session_item_archive")
    with op.batch_alter_table("turns") as turns:
        turns.drop_column("failed_tries")
