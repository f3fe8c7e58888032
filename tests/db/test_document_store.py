"""Document search on Postgres (tsvector, websearch_to_tsquery, ts_rank_cd) and on the
embedded SQLite (FTS5): best chunks first, and only ever the asking builder's."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import create_builder, update_builder
from db.document_files import chunk_text
from db.document_store import reindex, replace_document, search_documents


async def builder(sessions: async_sessionmaker[AsyncSession], **documents: list[str]) -> uuid.UUID:
    async with sessions.begin() as db:
        created = await create_builder(name="B", instructions="I", model="m", db=db)
        for name, chunks in documents.items():
            await replace_document(created.id, name, chunks, db=db)
        return created.id


async def test_the_best_chunks_come_first_and_only_the_builder_s_own(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bakery = await builder(
        sessions,
        hours=["We are open every day from 7 until 18.", "Closed on public holidays."],
        menu=["Sourdough bread 4.50 euro", "Gluten-free bread on Fridays only"],
    )
    rival = await builder(sessions, secret=["Our secret bread recipe uses rye."])
    async with sessions() as db:
        found = await search_documents(bakery, "gluten-free bread", db=db)
        none = await search_documents(bakery, "secret recipe", db=db)
        theirs = await search_documents(rival, "bread", db=db)
        nothing = await search_documents(bakery, "", db=db)
    assert [(p.source, p.text) for p in found] == [
        ("menu", "Gluten-free bread on Fridays only"),
        ("menu", "Sourdough bread 4.50 euro"),
    ]
    assert none == [] and nothing == []
    assert [p.text for p in theirs] == ["Our secret bread recipe uses rye."]


async def test_words_match_their_inflections(sessions: async_sessionmaker[AsyncSession]) -> None:
    bakery = await builder(sessions, hours=["The shop opens at 7 on weekdays."])
    async with sessions() as db:
        [found] = await search_documents(bakery, "opening hours weekday", db=db)
    assert found.source == "hours"


async def test_the_search_language_is_the_builder_s(
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Dutch stemming finds `broden` (loaves) for `brood`; English does not."""
    bakery = await builder(db_sessions, menu=["Wij bakken elke dag verse broden."])
    async with db_sessions() as db:
        assert await search_documents(bakery, "brood", db=db) == []
    async with db_sessions.begin() as db:
        await update_builder(bakery, {"search_language": "dutch"}, db=db)
        await reindex(bakery, db=db)
    async with db_sessions() as db:
        [found] = await search_documents(bakery, "brood", db=db)
    assert found.text == "Wij bakken elke dag verse broden."


def test_chunks_keep_paragraphs_whole_and_stay_under_the_size() -> None:
    paragraphs = [f"Paragraph {n}. " + "Bread is good. " * 20 for n in range(6)]
    long_sentence = "word " * 400
    chunks = chunk_text("\n\n".join([*paragraphs, long_sentence]), size=800)
    assert all(len(chunk) <= 800 for chunk in chunks)
    assert chunks[0].startswith("Paragraph 0.") and "\n\nParagraph 1." in chunks[0]
    assert " ".join(" ".join(chunks).split()) == " ".join(
        " ".join([*paragraphs, long_sentence]).split()
    )
