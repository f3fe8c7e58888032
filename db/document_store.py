"""Builders' documents: stored as chunks, searched with the database's own full-text
search (Postgres: a tsvector column with a GIN index, ranked by `ts_rank_cd`; the
embedded SQLite: an FTS5 table ranked by bm25).

A search only ever reads the chunks of one builder.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Uuid

from db.models import Document, DocumentChunk


@dataclass(frozen=True)
class Passage:
    """A chunk that matched a search, with the name of the document it came from."""

    source: str
    text: str


@dataclass(frozen=True)
class DocumentSummary:
    name: str
    chunks: int
    characters: int


_POSTGRES_INDEX = (
    "UPDATE document_chunks SET search_vector = "
    "to_tsvector(CAST(builders.search_language AS regconfig), document_chunks.content) "
    "FROM builders WHERE builders.id = document_chunks.builder_id AND "
)
_INDEX_BUILDER = text(_POSTGRES_INDEX + "document_chunks.builder_id = :id").bindparams(
    bindparam("id", type_=Uuid())
)
_INDEX_DOCUMENT = text(_POSTGRES_INDEX + "document_chunks.document_id = :id").bindparams(
    bindparam("id", type_=Uuid())
)

# Chunks with every word rank first (websearch_to_tsquery's AND), then those with some.
_POSTGRES_SEARCH = text(
    "WITH q AS (SELECT websearch_to_tsquery(CAST(search_language AS regconfig), :query) AS every"
    " FROM builders WHERE id = :builder_id),"
    " wide AS (SELECT every, CAST(replace(CAST(every AS text), ' & ', ' | ') AS tsquery) AS some"
    " FROM q)"
    " SELECT documents.name, document_chunks.content FROM document_chunks"
    " JOIN documents ON documents.id = document_chunks.document_id, wide"
    " WHERE document_chunks.builder_id = :builder_id AND document_chunks.search_vector @@ wide.some"
    " ORDER BY document_chunks.search_vector @@ wide.every DESC,"
    " ts_rank_cd(document_chunks.search_vector, wide.some) DESC, document_chunks.id"
    " LIMIT :limit"
).bindparams(bindparam("builder_id", type_=Uuid()))

_SQLITE_SEARCH = text(
    "SELECT documents.name, document_chunks.content FROM document_chunks_fts"
    " JOIN document_chunks ON document_chunks.id = document_chunks_fts.rowid"
    " JOIN documents ON documents.id = document_chunks.document_id"
    " WHERE document_chunks_fts MATCH :match AND document_chunks.builder_id = :builder_id"
    " ORDER BY bm25(document_chunks_fts), document_chunks.id LIMIT :limit"
).bindparams(bindparam("builder_id", type_=Uuid()))


async def replace_document(
    builder_id: uuid.UUID, name: str, chunks: list[str], *, db: AsyncSession
) -> Document:
    """Store `chunks` as the builder's document `name`, replacing one of that name."""
    await remove_document(builder_id, name, db=db)
    document = Document(builder_id=builder_id, name=name, characters=sum(map(len, chunks)))
    db.add(document)
    await db.flush()
    db.add_all(
        DocumentChunk(document_id=document.id, builder_id=builder_id, position=n, content=chunk)
        for n, chunk in enumerate(chunks)
    )
    await db.flush()
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(_INDEX_DOCUMENT, {"id": document.id})
    return document


async def reindex(builder_id: uuid.UUID, *, db: AsyncSession) -> None:
    """Recompute the builder's search vectors in its (new) language. SQLite's FTS5 table
    is kept by triggers instead."""
    if db.get_bind().dialect.name == "postgresql":
        await db.execute(_INDEX_BUILDER, {"id": builder_id})


async def remove_document(builder_id: uuid.UUID, name: str, *, db: AsyncSession) -> bool:
    """Delete the builder's document `name` and its chunks; False when there is none."""
    document_id = await db.scalar(
        select(Document.id).where(Document.builder_id == builder_id, Document.name == name)
    )
    if document_id is None:
        return False
    await db.execute(delete(DocumentChunk).where(DocumentChunk.document_id == document_id))
    await db.execute(delete(Document).where(Document.id == document_id))
    return True


async def documents_of(builder_id: uuid.UUID, *, db: AsyncSession) -> list[DocumentSummary]:
    rows = await db.execute(
        select(Document.name, func.count(DocumentChunk.id), Document.characters)
        .outerjoin(DocumentChunk, DocumentChunk.document_id == Document.id)
        .where(Document.builder_id == builder_id)
        .group_by(Document.id, Document.name, Document.characters)
        .order_by(Document.name)
    )
    return [DocumentSummary(name, chunks, characters) for name, chunks, characters in rows]


async def search_documents(
    builder_id: uuid.UUID, query: str, *, limit: int = 4, db: AsyncSession
) -> list[Passage]:
    """The builder's chunks that best match `query`, best first."""
    if db.get_bind().dialect.name == "postgresql":
        rows = await db.execute(
            _POSTGRES_SEARCH, {"builder_id": builder_id, "query": query, "limit": limit}
        )
    else:
        words = re.findall(r"\w+", query.lower())
        if not words:
            return []
        match = " OR ".join(f'"{word}"' for word in words)
        rows = await db.execute(
            _SQLITE_SEARCH, {"builder_id": builder_id, "match": match, "limit": limit}
        )
    return [Passage(source, content) for source, content in rows]


async def text_search_languages(*, db: AsyncSession) -> list[str] | None:
    """Postgres's text search configurations (`english`, `dutch`, `simple`, …); None on
    SQLite, whose FTS5 table stems English words whatever the language."""
    if db.get_bind().dialect.name != "postgresql":
        return None
    return list(await db.scalars(text("SELECT cfgname FROM pg_ts_config ORDER BY cfgname")))
