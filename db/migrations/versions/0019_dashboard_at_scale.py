"""The dashboard at a busy deployment's size: a conversation's turns by when they were
made and by where their input starts, its inbox messages by arrival (its unread count,
the number it last came on), what was stored and what failed today by time, and no
second index on `session_items (session_id, sequence)` (the unique constraint
`session_items_seq_unique` already is one; the other cost a write per stored item).
On Postgres, statistics on an item's `role`: without them the planner guesses that few
items are messages and reads a whole conversation to find its latest one.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

ROLE_STATISTICS = "session_items_role_stats"

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_turns_session_id_created_at", "turns", ["session_id", "created_at"])
    op.create_index("ix_turns_session_id_input_sequence", "turns", ["session_id", "input_sequence"])
    op.create_index("ix_turns_created_at", "turns", ["created_at"])
    op.create_index(
        "ix_inbound_messages_session_id_received_at",
        "inbound_messages",
        ["session_id", "received_at"],
    )
    op.create_index("ix_session_items_created_at", "session_items", ["created_at"])
    op.drop_index("session_items_seq_idx", "session_items")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE STATISTICS {ROLE_STATISTICS} ON ((item_data ->> 'role')) FROM session_items"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP STATISTICS {ROLE_STATISTICS}")
    op.create_index("session_items_seq_idx", "session_items", ["session_id", "sequence"])
    op.drop_index("ix_session_items_created_at", "session_items")
    op.drop_index("ix_inbound_messages_session_id_received_at", "inbound_messages")
    op.drop_index("ix_turns_created_at", "turns")
    op.drop_index("ix_turns_session_id_input_sequence", "turns")
    op.drop_index("ix_turns_session_id_created_at", "turns")
