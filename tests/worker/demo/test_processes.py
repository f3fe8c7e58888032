"""The demo's processes: one that stops is named with the last error it logged."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from worker.demo.bakery import DemoFailure
from worker.demo.processes import last_error, start


def test_a_worker_that_fails_to_start_is_named_with_its_error(tmp_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    worker = start("worker", ["worker", "--pool=nosuchpool"], env, tmp_path / "worker.log")
    worker.process.wait(timeout=60)
    with pytest.raises(DemoFailure) as stopped:
        worker.check()
    message = str(stopped.value)
    assert message.startswith("the worker stopped (exit code 2): "), message
    assert "nosuchpool" in message and "\n" not in message


def test_the_last_error_of_a_json_log_is_its_message_and_exception(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    records = [
        {"level": "ERROR", "message": "first failure"},
        {
            "level": "CRITICAL",
            "message": "Unrecoverable error",
            "exception": "Traceback (most recent call last):\n  ...\nOSError: disk full",
        },
        {"level": "INFO", "message": "shutting down"},
    ]
    log.write_text("\n".join(json.dumps(record) for record in records) + "\n")
    assert last_error(log) == "Unrecoverable error: OSError: disk full"
