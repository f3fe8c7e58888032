"""Our processes' logs read as an operator's tools read them: one JSON object per line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every complete line of `log` (its process may be writing the next one), each of
    which must be one JSON object with the fields every line has."""
    text = log.read_text()
    lines = [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert ISO_UTC.fullmatch(line["time"]), line
    return lines
