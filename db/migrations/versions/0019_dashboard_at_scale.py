"""The dashboard at a busy deployment's size: a conversation's turns by when they were
made and by where their input starts, what was stored and what failed today by time,
and no second index on `session_items (session_id, sequence)` (the unique constraint
`session_items_seq_unique` already is one; the other cost a write per stored item).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_turns_session_id_created_at", "turns", ["session_id", "created_at"])
    op.create_index("ix_turns_session_id_input_sequence", "turns", ["session_id", "input_sequence"])
    op.create_index("ix_turns_created_at", "turns", ["created_at"])
    op.create_index("ix_session_items_created_at", "session_items", ["created_at"])
    op.drop_index("session_items_seq_idx", "session_items")


def downgrade() -> None:
    op.create_index("session_items_seq_idx", "session_items", ["session_id", "sequence"])
    op.drop_index("ix_session_items_created_at", "session_items")
    op.drop_index("ix_turns_created_at", "turns")
    op.drop_index("ix_turns_session_id_input_sequence", "turns")
    op.drop_index("ix_turns_session_id_created_at", "turns")
