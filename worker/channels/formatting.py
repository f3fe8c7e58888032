"""Markdown from the model, rewritten in WhatsApp's own formatting.

WhatsApp renders `*bold*`, `_italic_`, `~strike~`, inline `code` and ```blocks```, and
`- ` lists; it shows Markdown headings, `**bold**` and `[links](…)` as raw symbols.
"""

from __future__ import annotations

import re

_CODE = re.compile(r"(```[\s\S]*?```|`[^`\n]+`)")
_FENCE_LANGUAGE = re.compile(r"^```[\w+-]*\n")
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_BULLET = re.compile(r"^([ \t]*)[*+][ \t]+", re.MULTILINE)
_BOLD_ITALIC = re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_ITALIC = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)[^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)[^)]*\)")
_BOLD_MARK = "\x00"


def markdown_to_whatsapp(text: str) -> str:
    """Rewrite the Markdown outside code spans; code is left exactly as written."""
    parts = _CODE.split(text)
    for index in range(0, len(parts), 2):
        parts[index] = _rewrite(parts[index])
    for index in range(1, len(parts), 2):
        parts[index] = _FENCE_LANGUAGE.sub("```\n", parts[index])
    return "".join(parts)


def _rewrite(text: str) -> str:
    text = _IMAGE.sub(
        lambda m: m.group(2) if not m.group(1) else f"{m.group(1)}: {m.group(2)}", text
    )
    text = _LINK.sub(_link, text)
    text = _HEADING.sub(lambda m: f"{_BOLD_MARK}{m.group(1)}{_BOLD_MARK}", text)
    text = _BULLET.sub(r"\1- ", text)
    text = _BOLD_ITALIC.sub(lambda m: f"{_BOLD_MARK}_{m.group(1)}_{_BOLD_MARK}", text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC.sub(r"_\1_", text)
    text = _STRIKE.sub(r"~\1~", text)
    return text.replace(_BOLD_MARK, "*")


def _link(match: re.Match[str]) -> str:
    label, url = match.group(1), match.group(2)
    return url if label.strip() in (url, url.removeprefix("mailto:")) else f"{label} ({url})"
