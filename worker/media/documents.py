"""A document's text for the agent: a PDF's through pypdf, a text file's as it is, cut to
`MEDIA_DOCUMENT_CHARACTERS` so one upload cannot fill the model's context."""

from __future__ import annotations

import io
import logging

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from worker.media.fetching import MediaUnreadable
from worker.media.sniffing import declared_family

logger = logging.getLogger(__name__)


def document_text(content: bytes, *, content_type: str, limit: int) -> str:
    """The document's text, at most `limit` characters (a cut one ends with `[…]`).
    MediaUnreadable for a format whose text we cannot read, or a broken file."""
    family = declared_family(content_type)
    if family == "pdf":
        text = _pdf_text(content, limit)
    elif family == "text":
        text = content[: limit * 4].decode("utf-8", errors="replace")
    else:
        raise MediaUnreadable(f"its text cannot be read ({content_type})")
    text = text.replace("\x00", "").strip()
    if not text:
        raise MediaUnreadable("no text in it (a scan?)")
    return text if len(text) <= limit else text[:limit].rstrip() + " […]"


def _pdf_text(content: bytes, limit: int) -> str:
    """Page by page, stopping once `limit` characters are read."""
    try:
        reader = PdfReader(io.BytesIO(content))
        pages: list[str] = []
        read = 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            read += len(pages[-1])
            if read > limit:
                break
    except (PyPdfError, ValueError, KeyError, TypeError) as error:
        logger.info("PDF unreadable: %s", type(error).__name__)
        raise MediaUnreadable("a broken PDF") from error
    return "\n".join(pages)
