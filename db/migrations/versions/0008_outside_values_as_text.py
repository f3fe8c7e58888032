"""Names, numbers and ids that providers and users send become `text` on Postgres, so a
long profile name or an unusual id is stored whole instead of failing its batch.

Postgres changes `varchar(n)` to `text` without rewriting the table or its indexes.
SQLite never enforced the lengths, and changing a type there rebuilds the table (which,
with foreign keys on, would cascade the drop): it keeps its declared types.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, its former length)
COLUMNS = [
    ("inbound_messages", "provider_message_id", 128),
    ("inbound_messages", "recipient", 64),
    ("inbound_messages", "sender", 160),
    ("inbound_messages", "sender_wa_id", 32),
    ("inbound_messages", "sender_user_id", 160),
    ("inbound_messages", "profile_name", 200),
    ("sessions", "external_id", 160),
    ("sessions", "display_name", 200),
    ("sessions", "wa_id", 32),
    ("sessions", "user_id", 160),
    ("outbound_messages", "recipient", 160),
    ("outbound_messages", "provider_message_id", 128),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in COLUMNS:
        op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(length))


def downgrade() -> None:
    """Values longer than the former lengths are cut to fit."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, length in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=sa.String(length),
            existing_type=sa.Text(),
            postgresql_using=f"left({column}, {length})",
        )
