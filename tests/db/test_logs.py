"""Logs tell users apart without showing their numbers."""

from __future__ import annotations

from db.logs import mask_numbers


def test_numbers_are_masked_wherever_they_appear() -> None:
    assert mask_numbers("whatsapp:+31612345678") == "whatsapp:+316•••••678"
    assert mask_numbers("The 'To' number 14155238886 is invalid") == (
        "The 'To' number 1415••••886 is invalid"
    )
    assert mask_numbers("turn 42 of 3 attempts") == "turn 42 of 3 attempts"
    assert mask_numbers(None) == "-"
