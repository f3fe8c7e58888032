"""Channels' own provider credentials (encrypted at rest), builders' own per-sender rate
limit, and a partial index over the inbox's unanswered messages (the metrics scrape and
`wabot inbox` read only those).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNANSWERED = sa.text("status IN ('pending', 'processing', 'failed')")


def upgrade() -> None:
    op.add_column("channels", sa.Column("credentials", sa.Text(), nullable=True))
    op.add_column("builders", sa.Column("turns_per_minute", sa.Integer(), nullable=True))
    op.create_index(
        "ix_inbound_messages_unanswered",
        "inbound_messages",
        ["status", "received_at"],
        postgresql_where=UNANSWERED,
        sqlite_where=UNANSWERED,
    )


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_unanswered", table_name="inbound_messages")
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+ has it): no batch rebuild of tables
    # that other tables' rows point at.
    op.drop_column("builders", "turns_per_minute")
    op.drop_column("channels", "credentials")
