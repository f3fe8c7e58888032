"""A sequence counter on sessions, so storing items is one statement.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sessions",
        sa.Column("next_sequence", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE sessions SET next_sequence = coalesce("
        "(SELECT max(sequence) + 1 FROM session_items WHERE session_id = sessions.id), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("sessions") as sessions:
        sessions.drop_column("next_sequence")
