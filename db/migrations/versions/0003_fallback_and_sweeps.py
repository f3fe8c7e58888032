"""Fallback replies for failed turns; when an inbox message was last enqueued (sweeps).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("builders", sa.Column("fallback_reply", sa.Text(), nullable=True))
    op.add_column(
        "inbound_messages", sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("inbound_messages") as inbox:
        inbox.drop_column("enqueued_at")
    with op.batch_alter_table("builders") as builders:
        builders.drop_column("fallback_reply")
