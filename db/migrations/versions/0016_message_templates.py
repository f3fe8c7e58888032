"""Outside WhatsApp's 24-hour window only approved templates reach a user: the templates
a builder may send are kept here (synced from Meta, or added by their Twilio ContentSid),
and a reply part that sent one records which, so a resumed turn sends the same template.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-13
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    document = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    op.create_table(
        "message_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("builder_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("name", sa.String(512), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("content_sid", sa.String(64), nullable=True),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "provider IN ('twilio', 'meta')", name=op.f("ck_message_templates_provider")
        ),
        sa.ForeignKeyConstraint(
            ["builder_id"],
            ["builders.id"],
            name=op.f("fk_message_templates_builder_id_builders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "builder_id",
            "provider",
            "name",
            "language",
            name=op.f("uq_message_templates_builder_id_provider_name_language"),
        ),
    )
    op.add_column("outbound_messages", sa.Column("template", document, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as outbox:
        outbox.drop_column("template")
    op.drop_table("message_templates")
