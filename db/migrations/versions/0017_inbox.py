"""The inbox: when an operator last opened each conversation (`operator_seen_at`, for
unread counts), what a turn's run cost (model, latency, tokens), and full-text search
over what was said (Postgres: a GIN index on the messages' text; SQLite: an FTS5 table
kept by triggers).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Must stay the expression `db.dashboard_queries.SEARCH_VECTOR` searches by, or the
# planner cannot use the index. `simple`: builders speak many languages, and an index
# expression needs one fixed configuration.
POSTGRES_SEARCH_VECTOR = (
    "to_tsvector('simple'::regconfig, "
    "jsonb_path_query_array(item_data, "
    '\'$ ? (@.role == "user" || @.role == "assistant").content ? (@.type() == "string")\')'
    " || jsonb_path_query_array(item_data, "
    '\'$ ? (@.role == "user" || @.role == "assistant").content[*].text\'))'
)

SQLITE_TEXT = (
    "CASE json_type(new.item_data, '$.content')"
    " WHEN 'text' THEN json_extract(new.item_data, '$.content')"
    " WHEN 'array' THEN (SELECT group_concat(json_extract(value, '$.text'), ' ')"
    " FROM json_each(new.item_data, '$.content') WHERE json_type(value) = 'object') END"
)
SQLITE_SPOKEN = "json_extract(new.item_data, '$.role') IN ('user', 'assistant')"
SQLITE_FTS = (
    "CREATE VIRTUAL TABLE session_items_fts USING fts5("
    "said, session_id UNINDEXED, item_id UNINDEXED, tokenize='porter unicode61')",
    f"CREATE TRIGGER session_items_fts_insert AFTER INSERT ON session_items WHEN {SQLITE_SPOKEN}"
    " BEGIN INSERT INTO session_items_fts(said, session_id, item_id)"
    f" VALUES ({SQLITE_TEXT}, new.session_id, new.id); END",
    "CREATE TRIGGER session_items_fts_delete AFTER DELETE ON session_items BEGIN "
    "DELETE FROM session_items_fts WHERE item_id = old.id; END",
    "INSERT INTO session_items_fts(said, session_id, item_id)"
    f" SELECT {SQLITE_TEXT}, new.session_id, new.id FROM session_items AS new"
    f" WHERE {SQLITE_SPOKEN}",
)


def upgrade() -> None:
    with op.batch_alter_table("sessions") as sessions:
        sessions.add_column(sa.Column("operator_seen_at", sa.DateTime(timezone=True)))
    # What came before the upgrade counts as seen: no conversation starts with every
    # message it ever had marked new.
    op.execute("UPDATE sessions SET operator_seen_at = updated_at")
    with op.batch_alter_table("turns") as turns:
        turns.add_column(sa.Column("model", sa.String(length=100)))
        turns.add_column(sa.Column("latency_ms", sa.Integer()))
        turns.add_column(sa.Column("input_tokens", sa.Integer()))
        turns.add_column(sa.Column("output_tokens", sa.Integer()))
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.execute(
            "CREATE INDEX ix_session_items_search ON session_items"
            f" USING gin (({POSTGRES_SEARCH_VECTOR}))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER session_items_fts_delete")
        op.execute("DROP TRIGGER session_items_fts_insert")
        op.execute("DROP TABLE session_items_fts")
    else:
        op.execute("DROP INDEX ix_session_items_search")
    with op.batch_alter_table("turns") as turns:
        turns.drop_column("output_tokens")
        turns.drop_column("input_tokens")
        turns.drop_column("latency_ms")
        turns.drop_column("model")
    with op.batch_alter_table("sessions") as sessions:
        sessions.drop_column("operator_seen_at")
