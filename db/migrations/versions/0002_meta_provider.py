"""Meta provider: message kinds, both user ids on inbox and sessions, canned replies.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Business-scoped user ids are a country code, a dot and up to 128 characters.
USER_ID = sa.String(160)


def upgrade() -> None:
    op.add_column("builders", sa.Column("unsupported_reply", sa.Text(), nullable=True))
    with op.batch_alter_table("sessions") as sessions:
        sessions.alter_column("external_id", type_=USER_ID, existing_nullable=False)
        sessions.add_column(sa.Column("display_name", sa.String(200), nullable=True))
        sessions.add_column(sa.Column("wa_id", sa.String(32), nullable=True))
        sessions.add_column(sa.Column("user_id", USER_ID, nullable=True))
    with op.batch_alter_table("inbound_messages") as inbox:
        inbox.alter_column("sender", type_=USER_ID, existing_nullable=False)
        inbox.add_column(sa.Column("sender_wa_id", sa.String(32), nullable=True))
        inbox.add_column(sa.Column("sender_user_id", USER_ID, nullable=True))
        inbox.add_column(sa.Column("kind", sa.String(32), nullable=False, server_default="text"))
    with op.batch_alter_table("outbound_messages") as outbox:
        outbox.alter_column("recipient", type_=USER_ID, existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as outbox:
        outbox.alter_column("recipient", type_=sa.String(64), existing_nullable=False)
    with op.batch_alter_table("inbound_messages") as inbox:
        inbox.drop_column("kind")
        inbox.drop_column("sender_user_id")
        inbox.drop_column("sender_wa_id")
        inbox.alter_column("sender", type_=sa.String(64), existing_nullable=False)
    with op.batch_alter_table("sessions") as sessions:
        sessions.drop_column("user_id")
        sessions.drop_column("wa_id")
        sessions.drop_column("display_name")
        sessions.alter_column("external_id", type_=sa.String(128), existing_nullable=False)
    op.drop_column("builders", "unsupported_reply")
