"""A builder may have voice notes answered by voice notes: the spoken reply is kept in
`media` like a user's file (with no inbox message), and the reply part that sends it
names it, so a resumed turn sends the same audio.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-11
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

InboxId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("builders") as builders:
        builders.add_column(
            sa.Column("voice_replies", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("media") as media:
        media.alter_column("inbound_message_id", existing_type=InboxId, nullable=True)
    with op.batch_alter_table("outbound_messages") as outbox:
        outbox.add_column(sa.Column("media_id", sa.Uuid(), nullable=True))
        outbox.create_foreign_key(
            op.f("fk_outbound_messages_media_id_media"),
            "media",
            ["media_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as outbox:
        outbox.drop_constraint(op.f("fk_outbound_messages_media_id_media"), type_="foreignkey")
        outbox.drop_column("media_id")
    op.execute("DELETE FROM media WHERE inbound_message_id IS NULL")
    with op.batch_alter_table("media") as media:
        media.alter_column("inbound_message_id", existing_type=InboxId, nullable=False)
    with op.batch_alter_table("builders") as builders:
        builders.drop_column("voice_replies")
