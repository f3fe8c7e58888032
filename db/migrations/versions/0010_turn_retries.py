"""A retried turn is reopened, not replaced: turns count their retries and note where
the history stood when the latest one began; a reply's parts are keyed by the try of
their turn that recorded them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("turns", sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("turns", sa.Column("retry_from_sequence", sa.Integer(), nullable=True))
    # SQLite rebuilds the table to change a constraint; nothing points at its rows.
    with op.batch_alter_table("outbound_messages") as outbox:
        outbox.add_column(sa.Column("retry", sa.Integer(), nullable=False, server_default="0"))
        outbox.drop_constraint("uq_outbound_messages_turn_id_part", type_="unique")
        outbox.create_unique_constraint(
            "uq_outbound_messages_turn_id_retry_part", ["turn_id", "retry", "part"]
        )


def downgrade() -> None:
    """Refused by the database while a retried turn has recorded parts of its own."""
    with op.batch_alter_table("outbound_messages") as outbox:
        outbox.drop_constraint("uq_outbound_messages_turn_id_retry_part", type_="unique")
        outbox.create_unique_constraint("uq_outbound_messages_turn_id_part", ["turn_id", "part"])
        outbox.drop_column("retry")
    op.drop_column("turns", "retry_from_sequence")
    op.drop_column("turns", "retries")
