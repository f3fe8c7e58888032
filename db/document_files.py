"""Reading a builder's files into text and cutting the text into searchable chunks."""

from __future__ import annotations

import io
import re
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from db.lossless_json import plain_text

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
SUFFIXES = (*TEXT_SUFFIXES, ".pdf")
CHUNK_CHARACTERS = 1200
"""About a few paragraphs: enough context for an answer, small enough to rank well."""
NAME_CHARACTERS = 255
"""`documents.name` holds this many."""
PDF_DAMAGE = (PyPdfError, ValueError, KeyError, IndexError, TypeError, AttributeError)
"""What pypdf raises on a damaged file: its own errors, and on some damage Python's."""


class DocumentError(ValueError):
    """A file that cannot be used as a document; the message names the file and why."""


def read_text(path: Path) -> str:
    """The text of a plain text, Markdown or PDF file on disk (`wabot docs add`)."""
    _check_suffix(str(path))
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DocumentError(f"{path}: cannot read it ({error.strerror or error})") from error
    return document_text(str(path), data)


def document_text(name: str, data: bytes) -> str:
    """The text of the file `name` holding `data`: what the CLI reads from disk and the
    dashboard receives as an upload, read by the same rules."""
    suffix = _check_suffix(name)
    try:
        if suffix == ".pdf":
            text = "\n\n".join(
                page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages
            )
        else:
            text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DocumentError(f"{name}: not UTF-8 text") from error
    except PDF_DAMAGE as error:
        raise DocumentError(f"{name}: not a readable PDF ({error})") from error
    if not text.strip():
        hint = " (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""
        raise DocumentError(f"{name}: has no text{hint}")
    return plain_text(text)  # what the agent reads, and a text column holds: no NUL


def document_name(filename: str) -> str:
    """The name an uploaded file is stored under: its last path part (browsers may send
    `C:\\fakepath\\x.pdf`), without NUL; refused when empty or too long."""
    name = filename.replace("\x00", "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        raise DocumentError("the file has no name")
    if len(name) > NAME_CHARACTERS:
        raise DocumentError(f"the file name is longer than {NAME_CHARACTERS} characters")
    return name


def _check_suffix(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise DocumentError(f"{name}: unsupported file type (use {', '.join(SUFFIXES)})")
    return suffix


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
