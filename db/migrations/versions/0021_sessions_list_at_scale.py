"""A builder's sessions list at any size: an index per sort the list offers at scale
(by last activity, item count and the user as shown, each led by the builder and ended
by the id that breaks ties), so its first page reads 25 index entries of a builder's
200,000; and a search that finds names by any part (Postgres: a trigram index), numbers
and ids whole, by index. The expression indexes are Postgres's alone: SQLAlchemy
cannot reflect them on SQLite, and the demo's few sessions need none.

Revision ID: 0021
Revises: 0019
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Must stay the expressions `db.dashboard_queries` sorts and searches by (`_shown_user`,
# `_found_by`), or the planner cannot use these indexes.
SHOWN_USER = (
    "builder_id",
    "coalesce(display_name, substr(external_id, 1, 4))",
    "length(external_id)",
    "substr(external_id, length(external_id) - 2)",
    "id",
)
NAME = "lower(coalesce(display_name, ''))"


def upgrade() -> None:
    op.create_index(
        "ix_sessions_builder_id_updated_at", "sessions", ["builder_id", "updated_at", "id"]
    )
    op.create_index(
        "ix_sessions_builder_id_next_sequence", "sessions", ["builder_id", "next_sequence", "id"]
    )
    op.create_index("ix_sessions_wa_id", "sessions", ["wa_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_sessions_builder_id_shown_user", "sessions", [sa.text(key) for key in SHOWN_USER]
        )
        op.create_index(
            "ix_sessions_external_id_lower", "sessions", [sa.text("lower(external_id)")]
        )
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            f"CREATE INDEX ix_sessions_name_trigrams ON sessions USING gin (({NAME}) gin_trgm_ops)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_sessions_name_trigrams")
        op.drop_index("ix_sessions_external_id_lower", "sessions")
        op.drop_index("ix_sessions_builder_id_shown_user", "sessions")
    op.drop_index("ix_sessions_wa_id", "sessions")
    op.drop_index("ix_sessions_builder_id_next_sequence", "sessions")
    op.drop_index("ix_sessions_builder_id_updated_at", "sessions")
