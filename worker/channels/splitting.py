"""Split long replies into provider-sized messages at natural boundaries."""

from __future__ import annotations

import re

_BOUNDARIES = (
    re.compile(r"\n\s*\n"),  # paragraphs
    re.compile(r"\n"),  # lines
    re.compile(r"(?<=[.!?…])\s+"),  # sentences
    re.compile(r"\s+"),  # words
)


def split_text(text: str, limit: int) -> list[str]:
    """Parts of at most `limit` characters, cut at the latest paragraph, line, sentence
    or word boundary in the second half of the window (so no part comes out tiny); only
    an unbroken run longer than `limit` is cut hard."""
    text = text.strip()
    parts: list[str] = []
    while len(text) > limit:
        cut = _last_boundary(text, limit)
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    if text:
        parts.append(text)
    return parts


def _last_boundary(text: str, limit: int) -> int:
    window = text[: limit + 1]
    for boundary in _BOUNDARIES:
        ends = [match.start() for match in boundary.finditer(window) if match.start() <= limit]
        if ends and ends[-1] >= limit // 2:
            return ends[-1]
    return limit
