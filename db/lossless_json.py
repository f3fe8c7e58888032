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

The checks that skip the encoding are substring searches of JSON text already at hand:
`dumps` searches the text it made, `parse` the body a webhook received.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MARKER = "wabot:json"
_QUOTED_MARKER = f'"{MARKER}"'
_QUOTED_MARKER_BYTES = _QUOTED_MARKER.encode()
_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# json.dumps (ASCII) writes an astral character as a surrogate pair of escapes.
_ESCAPED_PAIR = re.compile(r"\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}")
_FLOAT_LIMIT = 1e16
"""From here on `repr` writes an exponent, and JSONB reads the number back as an integer."""


def dumps(value: Any) -> str:
    """`value` as JSON text that JSONB stores and `loads` reads back as `json.loads` would
    read `json.dumps(value)`. Raises `TypeError` for what JSON cannot hold at all.

    Costs one `json.dumps` and a few substring checks of its text when nothing needs
    encoding (almost always)."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:  # NaN or Infinity somewhere (or an integer past Python's limit)
        return json.dumps(storable(value))
    return text if _is_storable(text) else json.dumps(storable(value))


def loads(data: str | bytes) -> Any:
    """The value `dumps` stored; one check of the text when nothing was encoded."""
    value = json.loads(data)
    encoded = _QUOTED_MARKER_BYTES in data if isinstance(data, bytes) else _QUOTED_MARKER in data
    return decoded(value) if encoded else value


def parse(data: bytes) -> tuple[Any, bool]:
    """`json.loads(data)`, and whether the value may hold what JSONB cannot keep (then
    `storable` makes the copy to store). Costs a few substring checks of the text, and a
    call per number with a fraction or exponent in it."""
    text = data.decode(json.detect_encoding(data), "surrogatepass")  # as json.loads does
    try:
        return _USUAL_NUMBERS.decode(text), _may_need_encoding(text)
    except _UnusualNumber:
        return json.loads(text), True


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


def _is_storable(text: str) -> bool:
    """Whether JSONB keeps this JSON text (as `json.dumps` writes it, ASCII) exactly; it may
    answer False for text that is fine (a user who wrote `e+`), never True for text that
    is not."""
    if "\\u0000" in text or "e+" in text or "-0.0" in text or _QUOTED_MARKER in text:
        return False
    surrogates = text.count("\\ud")
    return not surrogates or surrogates == 2 * len(_ESCAPED_PAIR.findall(text))


def _storable_float(number: float) -> bool:
    return (
        math.isfinite(number)
        and abs(number) < _FLOAT_LIMIT
        and not (number == 0 and math.copysign(1.0, number) < 0)
    )


class _UnusualNumber(Exception):
    """A number JSONB would not keep as Python reads it (NaN, Infinity, 1e999, 1e16, -0.0)."""


def _usual_float(literal: str) -> float:
    number = float(literal)
    if not _storable_float(number):
        raise _UnusualNumber
    return number


def _unusual_constant(_name: str) -> float:
    raise _UnusualNumber


_USUAL_NUMBERS = json.JSONDecoder(parse_float=_usual_float, parse_constant=_unusual_constant)
# In JSON text: an escaped ASCII character (U+0000, or a key spelled `wab\u006ft:json`),
# an escaped surrogate, and an escaped surrogate pair (an astral character).
_ESCAPED_ASCII = re.compile(r"\\u00[0-7][0-9a-fA-F]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_ESCAPED_SURROGATE_PAIR = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")


def _may_need_encoding(text: str) -> bool:
    """Whether JSON `text` (its numbers already checked) may spell a NUL, a lone surrogate
    or the marker; False only when it cannot."""
    if MARKER in text:
        return True
    if not text.isascii():  # a lone surrogate may have come as raw (surrogatepass) bytes
        try:
            text.encode()
        except UnicodeEncodeError:
            return True
    if "\\u" not in text:
        return False
    if _ESCAPED_ASCII.search(text):
        return True
    surrogates = len(_ESCAPED_SURROGATE.findall(text))
    return surrogates != 2 * len(_ESCAPED_SURROGATE_PAIR.findall(text))


def _wrapped(value: Any) -> dict[str, str]:
    return {MARKER: json.dumps(value)}
