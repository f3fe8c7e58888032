"""Builders' model settings and history window; their documents, chunked and indexed for
full-text search (tsvector + GIN on Postgres, an FTS5 table on SQLite).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_FTS = (
    "CREATE VIRTUAL TABLE document_chunks_fts USING fts5("
    "content, content='document_chunks', content_rowid='id', tokenize='porter unicode61')",
    "CREATE TRIGGER document_chunks_fts_insert AFTER INSERT ON document_chunks BEGIN "
    "INSERT INTO document_chunks_fts(rowid, content) VALUES (new.id, new.content); END",
    "CREATE TRIGGER document_chunks_fts_delete AFTER DELETE ON document_chunks BEGIN "
    "INSERT INTO document_chunks_fts(document_chunks_fts, rowid, content) "
    "VALUES ('delete', old.id, old.content); END",
)


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table("builders") as builders:
        builders.add_column(sa.Column("temperature", sa.Float(), nullable=True))
        builders.add_column(sa.Column("max_tokens", sa.Integer(), nullable=True))
        builders.add_column(sa.Column("history_window", sa.Integer(), nullable=True))
        builders.add_column(
            sa.Column(
                "search_language", sa.String(length=64), nullable=False, server_default="english"
            )
        )
    op.create_table(
        "documents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("builder_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("characters", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["builder_id"],
            ["builders.id"],
            name=op.f("fk_documents_builder_id_builders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint("builder_id", "name", name=op.f("uq_documents_builder_id_name")),
    )
    op.create_table(
        "document_chunks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("builder_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("search_vector", sa.Text() if sqlite else TSVECTOR(), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["documents.id"],
            name=op.f("fk_document_chunks_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["builder_id"],
            ["builders.id"],
            name=op.f("fk_document_chunks_builder_id_builders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_chunks")),
    )
    op.create_index(op.f("ix_document_chunks_document_id"), "document_chunks", ["document_id"])
    op.create_index(op.f("ix_document_chunks_builder_id"), "document_chunks", ["builder_id"])
    if sqlite:
        for statement in SQLITE_FTS:
            op.execute(statement)
    else:
        op.create_index(
            "ix_document_chunks_search",
            "document_chunks",
            ["search_vector"],
            postgresql_using="gin",
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER document_chunks_fts_delete")
        op.execute("DROP TRIGGER document_chunks_fts_insert")
        op.execute("DROP TABLE document_chunks_fts")
    else:
        op.drop_index("ix_document_chunks_search", table_name="document_chunks")
    op.drop_index(op.f("ix_document_chunks_builder_id"), table_name="document_chunks")
    op.drop_index(op.f("ix_document_chunks_document_id"), table_name="document_chunks")
    op.drop_table("document_chunks")
    op.drop_table("documents")
    with op.batch_alter_table("builders") as builders:
        builders.drop_column("search_language")
        builders.drop_column("history_window")
        builders.drop_column("max_tokens")
        builders.drop_column("temperature")
