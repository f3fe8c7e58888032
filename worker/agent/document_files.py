"""Reading a builder's files into text and cutting the text into searchable chunks."""

from __future__ import annotations

import re
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from db.lossless_json import plain_text

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
SUFFIXES = (*TEXT_SUFFIXES, ".pdf")
CHUNK_CHARACTERS = 1200
"""About a few paragraphs: enough context for an answer, small enough to rank well."""


class DocumentError(ValueError):
    """A file that cannot be used as a document; the message names the file and why."""


def read_text(path: Path) -> str:
    """The text of a plain text, Markdown or PDF file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DocumentError(f"{path}: unsupported file type (use {', '.join(SUFFIXES)})")
    try:
        if suffix == ".pdf":
            text = "\n\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
        else:
            text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DocumentError(f"{path}: cannot read it ({error.strerror or error})") from error
    except UnicodeDecodeError as error:
        raise DocumentError(f"{path}: not UTF-8 text") from error
    except PyPdfError as error:
        raise DocumentError(f"{path}: not a readable PDF ({error})") from error
    if not text.strip():
        hint = " (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""
        raise DocumentError(f"{path}: has no text{hint}")
    return plain_text(text)  # what the agent reads, and a text column holds: no NUL


def chunk_text(text: str, size: int = CHUNK_CHARACTERS) -> list[str]:
    """Whole paragraphs packed into chunks of at most `size` characters; a longer
    paragraph is cut at sentence ends, a longer sentence at spaces."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = re.sub(r"[ \t]+", " ", paragraph).strip()
        if paragraph:
            pieces.extend(_split(paragraph, size))
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= size:
            chunks[-1] = f"{chunks[-1]}\n\n{piece}"
        else:
            chunks.append(piece)
    return chunks


def _split(paragraph: str, size: int) -> list[str]:
    if len(paragraph) <= size:
        return [paragraph]
    parts: list[str] = []
    for unit in re.split(r"(?<=[.!?])\s+", paragraph):
        while len(unit) > size:
            cut = unit.rfind(" ", 0, size)
            cut = cut if cut > 0 else size
            parts.append(unit[:cut])
            unit = unit[cut:].lstrip()
        if parts and len(parts[-1]) + 1 + len(unit) <= size:
            parts[-1] = f"{parts[-1]} {unit}"
        elif unit:
            parts.append(unit)
    return parts
