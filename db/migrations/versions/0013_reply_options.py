"""A reply part can offer choices (WhatsApp buttons or a list): they are recorded with
it, so a resumed send offers the same ones and a later "2" is understood.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.add_column("outbound_messages", sa.Column("options", document, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as outbox:
        outbox.drop_column("options")
