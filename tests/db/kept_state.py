"""Migration 0020 as a module: its SQL of each kept fact and count, which the tests
compare with what the triggers kept."""

from __future__ import annotations

from importlib import util

from db.migrate import MIGRATIONS

_SPEC = util.spec_from_file_location(
    "kept_state", MIGRATIONS / "versions" / "0020_activity_and_attention_kept.py"
)
assert _SPEC is not None and _SPEC.loader is not None
migration = util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(migration)
