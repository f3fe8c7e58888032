"""Long replies are cut into provider-sized parts where a reader would expect."""

from __future__ import annotations

from worker.channels.splitting import split_text


def test_short_text_is_one_part() -> None:
    assert split_text("  Hello there.  ", 1600) == ["Hello there."]
    assert split_text("", 1600) == []


def test_cuts_at_the_last_paragraph_in_the_window() -> None:
    text = "A" * 60 + "\n\n" + "B" * 30 + "\n\n" + "C" * 50
    assert split_text(text, 100) == ["A" * 60 + "\n\n" + "B" * 30, "C" * 50]


def test_prefers_sentences_to_words() -> None:
    text = "One two three four five six. Seven eight nine ten eleven twelve."
    assert split_text(text, 40) == [
        "One two three four five six.",
        "Seven eight nine ten eleven twelve.",
    ]


def test_a_boundary_early_in_the_window_is_skipped_to_avoid_tiny_parts() -> None:
    text = "Hi. One two three four five six seven eight nine ten eleven."
    assert split_text(text, 40) == [
        "Hi. One two three four five six seven",
        "eight nine ten eleven.",
    ]


def test_never_returns_a_part_over_the_limit_and_loses_no_words() -> None:
    text = " ".join(f"word{n}" for n in range(2000))
    parts = split_text(text, 1600)
    assert all(len(part) <= 1600 for part in parts)
    assert " ".join(parts) == text


def test_an_unbroken_run_is_cut_hard() -> None:
    assert split_text("x" * 250, 100) == ["x" * 100, "x" * 100, "x" * 50]
