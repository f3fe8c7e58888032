"""`wabot docs …`: the files a builder's agent answers from (`search_documents`)."""

from __future__ import annotations

import logging
import sys
import uuid
from pathlib import Path

import click
from sqlalchemy.ext.asyncio import AsyncSession

from db.document_files import DocumentError, chunk_text, read_text
from db.document_store import DocumentSummary, documents_of, remove_document, replace_document
from worker.cli.support import emit, existing_builder, in_transaction, json_option


@click.group()
def docs() -> None:
    """Documents: what a builder's agent searches to answer questions about the business."""


@docs.command("add")
@click.argument("builder_id", type=click.UUID)
@click.argument(
    "files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@json_option
def docs_add(builder_id: uuid.UUID, files: tuple[Path, ...], as_json: bool) -> None:
    """Add FILES (.txt, .md, .markdown or .pdf) to BUILDER_ID's documents, each under its file
    name; a file added again replaces the earlier one. Nothing is stored unless every
    file can be read."""
    in_transaction(lambda db: existing_builder(builder_id, db=db))
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged PDF fails below, once
    chunked: dict[str, list[str]] = {}
    with click.progressbar(files, label="Reading", file=sys.stderr) as progress:
        for path in progress:
            try:
                chunked[path.name] = chunk_text(read_text(path))
            except DocumentError as error:
                raise click.ClickException(str(error)) from error

    async def store(db: AsyncSession) -> None:
        await existing_builder(builder_id, db=db)
        for name, chunks in chunked.items():
            await replace_document(builder_id, name, chunks, db=db)

    in_transaction(store)
    added = [{"name": name, "chunks": len(chunks)} for name, chunks in chunked.items()]
    emit(
        as_json,
        added,
        "\n".join(f"added {each['name']} ({each['chunks']} chunks)" for each in added),
    )


@docs.command("list")
@click.argument("builder_id", type=click.UUID)
@json_option
def docs_list(builder_id: uuid.UUID, as_json: bool) -> None:
    """List BUILDER_ID's documents with their chunks and size."""

    async def listing(db: AsyncSession) -> list[DocumentSummary]:
        await existing_builder(builder_id, db=db)
        return await documents_of(builder_id, db=db)

    documents = in_transaction(listing)
    emit(
        as_json,
        [
            {"name": each.name, "chunks": each.chunks, "characters": each.characters}
            for each in documents
        ],
        "\n".join(
            f"{each.name}  {each.chunks} chunks  {each.characters} characters" for each in documents
        )
        or "no documents",
    )


@docs.command("remove")
@click.argument("builder_id", type=click.UUID)
@click.argument("names", nargs=-1, required=True)
def docs_remove(builder_id: uuid.UUID, names: tuple[str, ...]) -> None:
    """Remove BUILDER_ID's documents NAMES (as `docs list` shows them); all or none."""

    async def remove(db: AsyncSession) -> None:
        await existing_builder(builder_id, db=db)
        missing = [name for name in names if not await remove_document(builder_id, name, db=db)]
        if missing:
            raise click.ClickException(f"no document named {', '.join(missing)}")

    in_transaction(remove)
    click.echo("\n".join(f"removed {name}" for name in names))
