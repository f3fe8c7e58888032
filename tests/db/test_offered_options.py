"""What a bare number picks of the options a reply offered, and how options are kept."""

from __future__ import annotations

import pytest

from db.offered_options import OfferedOptions, chosen, numbered

TIMES = OfferedOptions(("Today 15:00", "Tomorrow 10:00"), "Times")


@pytest.mark.parametrize(
    ("text", "picked"),
    [
        ("2", "Tomorrow 10:00"),
        (" 1. ", "Today 15:00"),
        ("2)", "Tomorrow 10:00"),
        ("3", None),
        ("0", None),
        ("2 please", None),
        ("Tomorrow", None),
        ("", None),
    ],
)
def test_only_a_bare_number_in_range_picks_an_option(text: str, picked: str | None) -> None:
    assert chosen(text, TIMES) == picked
    assert chosen(text, None) is None


def test_options_are_kept_as_json_and_read_back_only_when_whole() -> None:
    assert OfferedOptions.from_json(TIMES.as_json()) == TIMES
    for broken in (None, [], {"titles": []}, {"titles": [1]}, {"list_button": "x"}):
        assert OfferedOptions.from_json(broken) is None
    assert numbered("When?", TIMES) == "When?\n\n1. Today 15:00\n2. Tomorrow 10:00"
