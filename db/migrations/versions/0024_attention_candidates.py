"""The "needs attention" list at any size: it re-checks `db.attention`'s rule on a few
candidates instead of on every one of a builder's sessions. `session_attention` holds
the conversations whose latest turn failed or whose latest reply was not delivered,
noted by what makes that happen (rare events) and filled here from what is stored; a
partial index lists the paused conversations; an index on `inbound_messages
(received_at)` finds who wrote in the hours whose reply windows close soon.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAUSED = sa.text("paused_at IS NOT NULL")
LATEST_TURN = "(SELECT id FROM turns WHERE session_id = s.id ORDER BY created_at DESC LIMIT 1)"
NOT_DELIVERED = "('failed', 'undelivered')"

BACKFILL = f"""
INSERT INTO session_attention (session_id, builder_id, noted_at)
SELECT s.id, s.builder_id, CURRENT_TIMESTAMP FROM sessions AS s
WHERE s.id IN (
    SELECT session_id FROM turns WHERE status = 'failed'
    UNION SELECT session_id FROM outbound_messages WHERE status IN {NOT_DELIVERED}
) AND (
    (SELECT status FROM turns WHERE id = {LATEST_TURN}) = 'failed'
    OR EXISTS (
        SELECT 1 FROM outbound_messages AS part
        WHERE part.turn_id = {LATEST_TURN} AND part.status IN {NOT_DELIVERED}
        AND part.retry = (SELECT max(retry) FROM outbound_messages WHERE turn_id = part.turn_id)
    )
)
"""
"""The conversations `db.attention`'s rule flags for a failed latest turn or an
undelivered part of its latest try (as of this revision), among those with any failed
turn or part; the dashboard bench runs it too after loading its rows."""


def upgrade() -> None:
    op.create_table(
        "session_attention",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("builder_id", sa.Uuid(), nullable=False),
        sa.Column("noted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_attention_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_session_attention")),
    )
    op.create_index(
        "ix_session_attention_builder_id", "session_attention", ["builder_id", "session_id"]
    )
    op.create_index(
        "ix_sessions_builder_id_paused",
        "sessions",
        ["builder_id"],
        postgresql_where=PAUSED,
        sqlite_where=PAUSED,
    )
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_received_at", "inbound_messages")
    op.drop_index("ix_sessions_builder_id_paused", "sessions")
    op.drop_index("ix_session_attention_builder_id", "session_attention")
    op.drop_table("session_attention")
