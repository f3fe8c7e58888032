"""`.env.example`, made from the `Settings` model (every variable, its default) and the
README's Configuration table (what each means), so neither can drift from the code:
`python -m db.core.env_example` rewrites it, and a test fails when it is stale or a
setting has no row in the README.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from db.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HEADER = """\
# Every wabot setting with its default, for a `.env` beside the code (or the environment).
# Copy it to .env and change what you need; an empty value is unset. Made from
# db/core/settings.py and README.md's Configuration table by `python -m db.core.env_example`:
# edit those, not this file.
"""
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_NAME = re.compile(r"`([A-Z][A-Z0-9_]+)`")


class MissingSetting(LookupError):
    """A setting the README's Configuration table does not describe."""


def readme_rows(readme: str) -> dict[str, tuple[str, str]]:
    """Each variable of the README's Configuration table: (its default as the README
    says it, what it means), links reduced to their text. A row naming several variables
    (`A` / `B`) describes each."""
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names, default, meaning = (cell.strip() for cell in line.strip("|").split(" | ", 2))
        for name in _NAME.findall(names):
            rows[name] = (default, _LINK.sub(r"\1", meaning.rstrip(" |")))
    return rows


def shown(value: object) -> str:
    """A default as it is written in an environment file."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def env_example(readme: str) -> str:
    rows = readme_rows(readme)
    blocks = [HEADER]
    for field in Settings.model_fields.values():
        name = str(field.alias)
        if name not in rows:
            raise MissingSetting(f"{name} has no row in README.md's Configuration table")
        readme_default, meaning = rows[name]
        if field.default is None and not readme_default.startswith("unset"):
            meaning = f"{meaning} (unset: {readme_default})"
        blocks.append(f"# {meaning}\n{name}={shown(field.default)}\n")
    return "\n".join(blocks)


if __name__ == "__main__":
    text = env_example((ROOT / "README.md").read_text(encoding="utf-8"))
    (ROOT / ".env.example").write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {ROOT / '.env.example'}\n")
