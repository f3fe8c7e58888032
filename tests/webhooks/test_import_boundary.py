"""The process providers call carries no agent code: importing the webhook app, as
`uvicorn webhooks.app:app` does, or any of the modules its webhooks run, loads nothing of
the agent SDK and, of the worker, only the Celery app it enqueues through. (The import
contracts in pyproject.toml say the same of the source; this is what Python loads.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

AGENT_SDK = ("agents", "openai")


def loaded_by(module: str, tmp_path: Path) -> list[str]:
    """Every module a fresh interpreter holds after `import module`, with the default
    settings (away from the repository's .env)."""
    listing = f"import {module}; import sys, json; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", listing],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "WABOT_DATA_DIR": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "module",
    [
        "webhooks.app",
        "webhooks.providers.twilio",
        "webhooks.providers.meta",
        "webhooks.inbox_writer",
    ],
)
def test_the_webhook_app_loads_no_agent_code(module: str, tmp_path: Path) -> None:
    modules = loaded_by(module, tmp_path)
    assert [name for name in modules if name.split(".")[0] in AGENT_SDK] == []
    assert {name for name in modules if name.split(".")[0] == "worker"} <= {
        "worker",
        "worker.celery_app",
    }
    assert not [name for name in modules if name.startswith("webhooks.dashboard")]


def test_the_dashboard_and_the_combined_app_still_carry_the_agent(tmp_path: Path) -> None:
    """The web chat and operators' replies run agents and sends where the dashboard is
    served: the boundary above is the webhook app's, not a module that failed to load."""
    for module in ("webhooks.dashboard.server", "webhooks.combined_app"):
        modules = loaded_by(module, tmp_path)
        assert {"agents", "openai"} <= set(modules)
