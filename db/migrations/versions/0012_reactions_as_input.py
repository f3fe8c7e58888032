"""A builder may choose to have its agent answer emoji reactions (by default they are
recorded in the conversation, not answered).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("builders") as builders:
        builders.add_column(
            sa.Column("reactions_as_input", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("builders") as builders:
        builders.drop_column("reactions_as_input")
