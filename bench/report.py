"""Benchmark rows: our figure, the baseline measured in the same run, their ratio."""

from __future__ import annotations

import json
import operator
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

_COMPARE = {"<=": operator.le, ">=": operator.ge, "==": operator.eq}


@dataclass(frozen=True)
class Row:
    """`ratio` is ours ÷ baseline; `target` is how that ratio must compare, e.g. "<= 1.5",
    or, starting with "ours", how our own figure must, e.g. "ours <= 50"."""

    row: str
    unit: str
    ours: float
    baseline: float
    target: str

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")

    @property
    def met(self) -> bool:
        *subject, comparison, bound = self.target.split()
        figure = self.ours if subject == ["ours"] else self.ratio
        return bool(_COMPARE[comparison](figure, float(bound)))

    def as_json(self) -> dict[str, object]:
        return {**asdict(self), "ratio": round(self.ratio, 3), "met": self.met}


def table(rows: list[Row], changes: list[str] | None = None) -> str:
    """The rows as text; `changes`, one per row, adds a column of how each ratio moved
    since the committed results."""
    header = (
        f"{'row':<62} {'unit':<10} {'ours':>10} {'baseline':>10} {'ratio':>7} {'target':>12}  met"
    )
    if changes is not None:
        header += f"  {'vs committed':<12}"
    lines = [header, "-" * len(header)]
    for index, row in enumerate(rows):
        line = (
            f"{row.row:<62} {row.unit:<10} {row.ours:>10.3f} {row.baseline:>10.3f}"
            f" {row.ratio:>7.2f} {row.target:>12}  {'yes' if row.met else 'NO '}"
        )
        if changes is not None:
            line += f"  {changes[index]}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def machine() -> str:
    cores = os.cpu_count()
    return f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"


def write(rows: list[Row], folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "results.json"
    path.write_text(json.dumps([row.as_json() for row in rows], indent=2) + "\n")
    return path
