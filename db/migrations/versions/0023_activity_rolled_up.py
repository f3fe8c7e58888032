"""The builders page and its charts at ten million items: settled activity is rolled up
per builder and UTC day, off the path that stores messages, so a page counts only what
arrived since (a few minutes of rows) instead of two weeks of messages and turns.

`activity_days` holds, per builder and day, its users' and agent's messages, its bot
turns, their failures and its operators' failed turns; `reply_times` how many bot turns
replied in each tenth of a second (a median is not additive, a histogram is), both keyed
by day first (pages read the last days, of every builder or one); `session_counts` how
many sessions each builder had made (sessions are deleted only with their builder);
`activity_rollup` the one row saying up to when they hold what is stored (NULL: nothing
rolled up yet, the pages count everything live). The worker's sweeper fills them
(`db.activity.roll_up_activity`); no trigger, nothing on a message's path.

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _day_of_builder(table: str) -> list[sa.schema.SchemaItem]:
    """A day of a builder's, deleted with it."""
    return [
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("builder_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["builder_id"],
            ["builders.id"],
            name=op.f(f"fk_{table}_builder_id_builders"),
            ondelete="CASCADE",
        ),
    ]


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "activity_days",
        *_day_of_builder("activity_days"),
        _count("messages"),
        _count("turns"),
        _count("failures"),
        _count("operator_failures"),
        sa.PrimaryKeyConstraint("day", "builder_id", name=op.f("pk_activity_days")),
    )
    op.create_table(
        "reply_times",
        *_day_of_builder("reply_times"),
        sa.Column("tenths", sa.Integer(), nullable=False),
        _count("turns"),
        sa.PrimaryKeyConstraint("day", "builder_id", "tenths", name=op.f("pk_reply_times")),
    )
    op.create_table(
        "session_counts",
        sa.Column("builder_id", sa.Uuid(), nullable=False),
        _count("sessions"),
        sa.ForeignKeyConstraint(
            ["builder_id"],
            ["builders.id"],
            name=op.f("fk_session_counts_builder_id_builders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("builder_id", name=op.f("pk_session_counts")),
    )
    rollup = op.create_table(
        "activity_rollup",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("rolled_up_to", sa.DateTime(timezone=True)),
        sa.CheckConstraint("id = 1", name=op.f("ck_activity_rollup_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activity_rollup")),
    )
    op.bulk_insert(rollup, [{"id": 1, "rolled_up_to": None}])


def downgrade() -> None:
    op.drop_table("activity_rollup")
    op.drop_table("session_counts")
    op.drop_table("reply_times")
    op.drop_table("activity_days")
