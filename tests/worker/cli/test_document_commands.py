"""`wabot docs …`: a builder's files become chunks its agent can search."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.document_store import Passage, search_documents
from tests.conftest import Wabot
from tests.factories import pdf_with_text


def create_builder(wabot: Wabot) -> str:
    created = wabot("builder", "create", "--name", "Bakery", "--instructions", "I", "--json")
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["id"])


async def search(
    sessions: async_sessionmaker[AsyncSession], builder_id: str, query: str
) -> list[Passage]:
    async with sessions() as db:
        return await search_documents(uuid.UUID(builder_id), query, db=db)


async def test_text_markdown_and_pdf_files_are_added_listed_replaced_and_removed(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    builder_id = create_builder(wabot)
    hours = tmp_path / "hours.txt"
    hours.write_text("We are open Monday to Saturday from 7 until 18.\n")
    menu = tmp_path / "menu.md"
    menu.write_text("# Menu\n\nSourdough loaf: 4.50 euro.\n\nCroissant: 1.80 euro.\n")
    prices = tmp_path / "catering.pdf"
    prices.write_bytes(pdf_with_text("Catering for weddings", "Cakes from 120 euro"))

    added = wabot("docs", "add", builder_id, str(hours), str(menu), str(prices), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == [
        {"name": "hours.txt", "chunks": 1},
        {"name": "menu.md", "chunks": 1},
        {"name": "catering.pdf", "chunks": 1},
    ]
    listed = json.loads(wabot("docs", "list", builder_id, "--json").stdout)
    assert [(each["name"], each["chunks"]) for each in listed] == [
        ("catering.pdf", 1),
        ("hours.txt", 1),
        ("menu.md", 1),
    ]
    [wedding] = await search(db_sessions, builder_id, "wedding cakes")
    assert wedding.source == "catering.pdf" and "Cakes from 120 euro" in wedding.text
    [loaf] = await search(db_sessions, builder_id, "sourdough price")
    assert loaf.source == "menu.md"

    hours.write_text("From 1 March we open on Sundays too.\n")
    again = wabot("docs", "add", builder_id, str(hours))
    assert (again.returncode, again.stdout.strip()) == (0, "added hours.txt (1 chunks)")
    assert len(json.loads(wabot("docs", "list", builder_id, "--json").stdout)) == 3
    assert [p.text for p in await search(db_sessions, builder_id, "sundays")] == [
        "From 1 March we open on Sundays too."
    ]
    assert await search(db_sessions, builder_id, "saturday") == []

    removed = wabot("docs", "remove", builder_id, "hours.txt", "menu.md")
    assert (removed.returncode, removed.stdout.splitlines()) == (
        0,
        ["removed hours.txt", "removed menu.md"],
    )
    assert wabot("docs", "list", builder_id).stdout.startswith("catering.pdf  1 chunks")
    assert await search(db_sessions, builder_id, "sourdough") == []
    missing = wabot("docs", "remove", builder_id, "catering.pdf", "nope.txt")
    assert (missing.returncode, missing.stderr.strip()) == (1, "Error: no document named nope.txt")
    assert len(json.loads(wabot("docs", "list", builder_id, "--json").stdout)) == 1


@pytest.mark.parametrize(
    ("name", "content", "complaint"),
    [
        ("notes.docx", b"PK\x03\x04", "unsupported file type (use .txt, .md, .markdown, .pdf)"),
        ("latin.txt", "café".encode("latin-1"), "not UTF-8 text"),
        ("broken.pdf", b"%PDF-1.4 nothing else", "not a readable PDF"),
        ("empty.md", b"  \n\n", "has no text"),
        ("scan.pdf", pdf_with_text(), "has no text (a scanned PDF needs OCR first)"),
    ],
)
def test_an_unusable_file_is_named_and_nothing_is_stored(
    wabot: Wabot, tmp_path: Path, name: str, content: bytes | None, complaint: str
) -> None:
    builder_id = create_builder(wabot)
    good = tmp_path / "good.txt"
    good.write_text("Fresh bread daily.")
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    result = wabot("docs", "add", builder_id, str(good), str(bad))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith(f"Error: {bad}: {complaint}")
    assert wabot("docs", "list", builder_id, "--json").stdout.strip() == "[]"


async def test_a_file_holding_a_nul_is_added_and_read_with_a_replacement_character(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    builder_id = create_builder(wabot)
    hours = tmp_path / "hours.txt"
    hours.write_bytes(b"Opening hours: daily from 9\x00 until 17.\n")
    added = wabot("docs", "add", builder_id, str(hours))
    assert added.returncode == 0, added.stderr
    [found] = await search(db_sessions, builder_id, "opening hours")
    assert found.text == "Opening hours: daily from 9\ufffd until 17."


def test_documents_of_an_unknown_builder_are_refused(wabot: Wabot, tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("Fresh bread daily.")
    missing = str(uuid.uuid4())
    for args in (["add", missing, str(good)], ["list", missing], ["remove", missing, "good.txt"]):
        result = wabot("docs", *args)
        assert (result.returncode, result.stderr.strip()) == (
            1,
            f"Error: no builder with id {missing}",
        )
