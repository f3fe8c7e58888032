"""The last committed results (`bench/baseline.json`), so that a run shows what changed.

Each mode (full, quick) keeps its own rows: a quick run is shorter and sizes its
dashboard rows at 1/10, so its figures only compare with another quick run. What is
compared is each row's ratio (ours ÷ the baseline measured in the same run), which a
faster or slower machine moves far less than the raw figures. A row regresses when its
ratio moved the wrong way, as its target reads it, by more than its mode's `TOLERANCE`:
the machine's noise between two runs of the same code is within that. The file changes
only when someone runs `make bench SAVE=1` and commits it.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.report import Row, machine

PATH = Path(__file__).with_name("baseline.json")
TOLERANCE = {"full": 0.15, "quick": 0.40}
"""How far a ratio may move the wrong way before the row counts as regressed, per mode.
A quick run measures each row for seconds: back to back on one quiet machine, the same
code's receiver and session rows moved by up to 40% (receiver vs Flask 6.8×, 11.5×,
8.2×), where full runs stay within 15%."""


@dataclass(frozen=True)
class Baseline:
    """One mode's committed run: where it came from and each row's ratio."""

    mode: str
    date: str
    commit: str
    machine: str
    ratios: dict[str, float]

    def describe(self) -> str:
        return f"{self.mode} run of {self.date} at {self.commit} on {self.machine}"


@dataclass(frozen=True)
class Change:
    """A row's ratio now against the committed one (None: the row is new)."""

    row: Row
    before: float | None
    tolerance: float

    @property
    def relative(self) -> float | None:
        if self.before is None or self.before == 0:
            return None
        return self.row.ratio / self.before - 1

    @property
    def regressed(self) -> bool:
        """Moved the wrong way by more than `tolerance` (an `==` row: moved at all)."""
        if self.relative is None:
            return False
        comparison = self.row.target.split()[-2]
        if comparison == "==":
            return abs(self.relative) > 1e-9
        worse = self.relative if comparison == "<=" else -self.relative
        return worse > self.tolerance

    def label(self) -> str:
        if self.relative is None:
            return "new"
        return f"{self.relative:+.0%}" + (" worse" if self.regressed else "")


def load(mode: str, path: Path = PATH) -> Baseline | None:
    """The committed run of `mode`, or None when there is none yet."""
    if not path.exists():
        return None
    entry = json.loads(path.read_text()).get(mode)
    if entry is None:
        return None
    return Baseline(
        mode=mode,
        date=entry["date"],
        commit=entry["commit"],
        machine=entry["machine"],
        ratios={
            row["row"]: Row(
                row["row"], row["unit"], row["ours"], row["baseline"], row["target"]
            ).ratio
            for row in entry["rows"]
        },
    )


def changes(rows: list[Row], mode: str, baseline: Baseline | None) -> list[Change]:
    """Each of `mode`'s `rows` against the committed ratio of its name, if any."""
    ratios = baseline.ratios if baseline else {}
    return [Change(row, ratios.get(row.row), TOLERANCE[mode]) for row in rows]


def save(rows: list[Row], mode: str, path: Path = PATH) -> Path:
    """Make this run the committed results of `mode`, keeping the other mode's."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    saved[mode] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "machine": machine(),
        "rows": [row.as_json() for row in rows],
    }
    path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    return path


def _commit() -> str:
    described = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=PATH.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    return described.stdout.strip() or "unknown"
