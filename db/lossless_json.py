"""JSON that Postgres keeps exactly as Python's `json` reads and writes it.

JSONB refuses what Python's `json` (and the SDK's `SQLiteSession`) happily store: a
string holding U+0000 or a lone surrogate (`"\\ud800"`), `NaN` and `Infinity`; and it
silently changes a float of 1e16 or more into an integer and `-0.0` into `0.0`. Each such
value (and any object with such a key) is stored instead as `{"wabot:json": "<its JSON
text, as Python's json writes it>"}`, a genuine object with a `wabot:json` key likewise,
so reading it back is unambiguous. Everything else is stored as it is: the document
stays queryable, and only a value that needs it pays for the encoding.

Text columns cannot hold U+0000 or a lone surrogate at all: `plain_text` shows them as
U+FFFD, for what a person (or the agent) reads, beside a lossless JSON copy.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

MARKER = "wabot:json"
_QUOTED_MARKER = f'"{MARKER}"'
_QUOTED_MARKER_BYTES = _QUOTED_MARKER.encode()
_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# json.dumps (ASCII) writes an astral character as a surrogate pair of escapes.
_ESCAPED_PAIR = re.compile(r"\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}")
_FLOAT_LIMIT = 1e16
"""From here on `repr` writes an exponent, and JSONB reads the number back as an integer."""


def dumps(value: Any, *, encode: Callable[[Any], Any] | None = None) -> str:
    """`value` as JSON text that JSONB stores and `loads` reads back equal (NaN aside, which
    is never equal to itself). Raises `TypeError` for what JSON cannot hold at all.

    Costs one `json.dumps` and a few substring checks of its text when nothing needs
    encoding (almost always); otherwise `encode` (default `storable`) makes the copy
    that is written."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:  # NaN or Infinity somewhere (or an integer past Python's limit)
        text = ""
    if text and is_storable(text):
        return text
    return json.dumps((encode or storable)(value))


def loads(data: str | bytes) -> Any:
    """The value `dumps` stored; one check of the text when nothing was encoded."""
    value = json.loads(data)
    marker = _QUOTED_MARKER_BYTES if isinstance(data, bytes) else _QUOTED_MARKER
    return decoded(value) if marker in data else value  # type: ignore[operator]


def is_storable(text: str) -> bool:
    """Whether JSONB keeps this JSON text (as `json.dumps` writes it, ASCII) exactly; it may
    answer False for text that is fine (a user who wrote `e+`), never True for text that
    is not."""
    if "\\u0000" in text or "e+" in text or "-0.0" in text or _QUOTED_MARKER in text:
        return False
    surrogates = text.count("\\ud")
    return not surrogates or surrogates == 2 * len(_ESCAPED_PAIR.findall(text))


def storable(value: Any) -> Any:
    """A copy of `value` in which every value JSONB cannot keep is in its lossless form."""
    if isinstance(value, str):
        return _wrapped(value) if _UNSTORABLE_CHARACTERS.search(value) else value
    if isinstance(value, float):
        return value if _storable_float(value) else _wrapped(value)
    if isinstance(value, dict):
        if MARKER in value or any(
            isinstance(key, str) and _UNSTORABLE_CHARACTERS.search(key) for key in value
        ):
            return _wrapped(value)
        return {key: storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [storable(item) for item in value]
    return value


def decoded(value: Any) -> Any:
    """`value` with every lossless form replaced by what it stands for."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(MARKER), str):
            return json.loads(value[MARKER])
        return {key: decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return value


def plain_text(text: str) -> str:
    """`text` as a Postgres text column can hold it: U+0000 and lone surrogates become
    U+FFFD (the replacement character), everything else is kept."""
    return _UNSTORABLE_CHARACTERS.sub("\ufffd", text)


def _storable_float(number: float) -> bool:
    return (
        math.isfinite(number)
        and abs(number) < _FLOAT_LIMIT
        and not (number == 0 and math.copysign(1.0, number) < 0)
    )


def _wrapped(value: Any) -> dict[str, str]:
    return {MARKER: json.dumps(value)}
