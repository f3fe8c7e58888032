"""`.env.example` lists every setting with its default and its README line, and says
what the code says."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.core.env_example import MissingSetting, env_example, readme_rows
from db.core.settings import Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
EXAMPLE = ROOT / ".env.example"


def assignments(text: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )


def test_every_setting_is_in_env_example() -> None:
    listed = assignments(EXAMPLE.read_text(encoding="utf-8"))
    names = [str(field.alias) for field in Settings.model_fields.values()]
    assert [name for name in names if name not in listed] == []
    assert sorted(listed) == sorted(names)


def test_env_example_is_what_the_settings_and_readme_make() -> None:
    """Stale after a setting or its README row changed: `python -m db.core.env_example`."""
    assert EXAMPLE.read_text(encoding="utf-8") == env_example(README)


def test_its_values_are_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copied to `.env` as it is, it changes nothing."""
    for field in Settings.model_fields.values():
        monkeypatch.delenv(str(field.alias), raising=False)
    from_example = Settings(_env_file=EXAMPLE)
    assert from_example.model_dump() == Settings(_env_file=None).model_dump()


def test_each_line_says_what_the_readme_says() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert (
        "# secret (16+ characters); signs in the admin, who sees every builder\nADMIN_TOKEN=\n"
    ) in text
    assert "\nWORKER_CONCURRENCY=32\n" in text and "\nTYPING_INDICATOR=true\n" in text
    assert "(unset: SQLite file `.wabot/wabot.db`)\nDATABASE_URL=\n" in text
    # A row naming two variables describes both.
    rows = readme_rows(README)
    assert rows["OPENAI_MAX_RETRIES"][1] == rows["OPENAI_TIMEOUT_SECONDS"][1]


def test_a_setting_the_readme_does_not_describe_fails() -> None:
    without = README.replace("| `TTS_VOICE` |", "| TTS voice |")
    with pytest.raises(MissingSetting, match="TTS_VOICE has no row"):
        env_example(without)
