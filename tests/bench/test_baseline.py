"""`make bench` against the committed results: which moves count as a regression, and
that a saved run is what the next run compares with."""

from __future__ import annotations

from pathlib import Path

from bench import baseline
from bench.report import Row, table


def _rows(throughput: float, latency: float, tasks: float) -> list[Row]:
    return [
        Row("worker: ours vs naive", "msg/s", throughput, 2.0, ">= 25"),
        Row("receiver: p50 latency vs Flask", "ms", latency, 100.0, "<= 1"),
        Row("receiver: tasks per inbox row", "tasks", tasks, 1000.0, "== 1"),
    ]


def test_a_saved_run_is_what_the_next_run_of_its_mode_compares_with(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    baseline.save(_rows(60.0, 20.0, 1000.0), "quick", path)
    baseline.save(_rows(70.0, 20.0, 1000.0), "full", path)

    quick = baseline.load("quick", path)
    assert quick is not None
    assert quick.ratios["worker: ours vs naive"] == 30.0
    full = baseline.load("full", path)
    assert full is not None
    assert full.ratios["worker: ours vs naive"] == 35.0


def test_a_ratio_that_moved_the_wrong_way_beyond_the_noise_is_a_regression(
    tmp_path: Path,
) -> None:
    path = tmp_path / "baseline.json"
    baseline.save(_rows(60.0, 20.0, 1000.0), "full", path)
    committed = baseline.load("full", path)

    within_noise = baseline.changes(_rows(54.0, 22.0, 1000.0), "full", committed)
    assert [change.regressed for change in within_noise] == [False, False, False]

    worse = baseline.changes(_rows(40.0, 40.0, 999.0), "full", committed)
    assert [change.regressed for change in worse] == [True, True, True]
    assert [change.label() for change in worse] == ["-33% worse", "+100% worse", "-0% worse"]

    better = baseline.changes(_rows(90.0, 5.0, 1000.0), "full", committed)
    assert [change.label() for change in better] == ["+50%", "-75%", "+0%"]


def test_a_row_without_committed_results_is_new_and_shown_as_such(tmp_path: Path) -> None:
    rows = _rows(60.0, 20.0, 1000.0)
    assert baseline.load("full", tmp_path / "missing.json") is None
    changes = baseline.changes(rows, "full", None)
    assert [change.label() for change in changes] == ["new", "new", "new"]
    assert table(rows, [change.label() for change in changes]).splitlines()[2].endswith("new")


def test_a_quick_run_allows_its_wider_noise(tmp_path: Path) -> None:
    """-33% is a regression in a full run, within a quick run's noise; -50% is not."""
    path = tmp_path / "baseline.json"
    baseline.save(_rows(60.0, 20.0, 1000.0), "quick", path)
    committed = baseline.load("quick", path)

    noisy = baseline.changes(_rows(40.0, 26.0, 1000.0), "quick", committed)
    assert [change.regressed for change in noisy] == [False, False, False]
    worse = baseline.changes(_rows(30.0, 30.0, 1000.0), "quick", committed)
    assert [change.regressed for change in worse] == [True, True, False]
