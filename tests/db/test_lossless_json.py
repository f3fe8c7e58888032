"""`db.lossless_json`: whatever Python's json reads, JSONB stores and gives back identical,
and the cheap checks that skip the encoding never skip a value that needs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from db import lossless_json
from tests.services import LIBPQ_DSN

text = st.text(st.characters(exclude_categories=())) | st.sampled_from(
    ["\x00", "\ud800", "\udbff\udfff", "wabot:json", '"wabot:json"', "e+", "-0.0", "\\u0000"]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(text | st.just(lossless_json.MARKER), children, max_size=4)
    ),
    max_leaves=12,
)


def same(left: Any, right: Any) -> bool:
    """Equal as JSON text: NaN equals itself, 1e16 is not the integer 10**16."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


@pytest.fixture(scope="module")
def postgres() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(LIBPQ_DSN, autocommit=True) as connection:
        yield connection


@settings(max_examples=500, deadline=None)
@given(value=json_values)
def test_jsonb_gives_back_what_python_json_does(
    postgres: psycopg.Connection[Any], value: Any
) -> None:
    """As Python's json (and the SDK's SQLiteSession) give it back: two lone surrogates
    that form a pair come back as the character they spell, like any JSON reader's."""
    [(stored,)] = postgres.execute("SELECT %s::jsonb::text", (lossless_json.dumps(value),))
    expected = json.loads(json.dumps(value))
    assert same(lossless_json.loads(stored), expected)
    assert same(lossless_json.loads(stored.encode()), expected)


@settings(max_examples=1000, deadline=None)
@given(value=json_values, ascii_only=st.booleans())
def test_a_body_said_to_need_nothing_needs_nothing(value: Any, ascii_only: bool) -> None:
    """The receiver's fast path: `parse` answering False means the value is stored as it is."""
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    parsed, may_need = lossless_json.parse(body)
    assert same(parsed, json.loads(body))
    if not may_need:
        assert same(lossless_json.storable(parsed), parsed)


@pytest.mark.parametrize(
    ("body", "parsed"),
    [
        (b'{"n": 1e999}', {"n": float("inf")}),
        (b'{"n": -0.0}', {"n": -0.0}),
        (b'{"t": "\\ud83d\\ude00 \\u00e9"}', {"t": "😀 é"}),
        (b'{"wab\\u006ft:json": 1}', {"wabot:json": 1}),
        ('{"t": "raw \ud800"}'.encode("utf-8", "surrogatepass"), {"t": "raw \ud800"}),
    ],
)
def test_spellings_json_allows_are_caught(body: bytes, parsed: Any) -> None:
    value, may_need = lossless_json.parse(body)
    assert same(value, parsed)
    assert may_need == (not same(lossless_json.storable(value), value))


def test_text_columns_get_the_replacement_character() -> None:
    assert lossless_json.plain_text("a\x00b\ud800c😀") == "a\ufffdb\ufffdc😀"
