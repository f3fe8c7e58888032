"""What an operator reads: one line per event, ids to follow, no numbers or secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from db.logs import mask_numbers

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-live-0123456789abcdef"
SESSION = "3c6489e8-3b8e-4f2f-9970-12345678901a"
# A process that logs as ours do: its own lines in a correlation context, a library's
# line quoting a number (as Celery's retry line quotes an exception), uvicorn's and
# Celery's `extra`, and a traceback holding a number and the OpenAI key.
PROCESS = f"""
import logging
from db.log_context import log_context
from db.logs import configure_logging
from db.settings import get_settings

configure_logging(get_settings())
ours = logging.getLogger("worker.turns")
with log_context(inbound_id=42, session_id="{SESSION}"):
    ours.info("turn of session %s replied", "{SESSION}")
    try:
        raise ValueError("refused whatsapp:+31612345678 with key {SECRET}")
    except ValueError:
        ours.exception("unexpected")
logging.getLogger("celery.app.trace").info(
    "Task x retry: %s", "SendError('The To number 31612345678')", extra={{"data": {{"args": 1}}}}
)
logging.getLogger("uvicorn.error").info("started", extra={{"color_message": "colours"}})
logging.getLogger("httpx").info("POST https://api.twilio.com/?To=31612345678")
"""


def run_process(log_format: str) -> list[str]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "LOG_FORMAT": log_format,
        "OPENAI_API_KEY": SECRET,
    }
    done = subprocess.run(
        [sys.executable, "-c", PROCESS],
        env=env,
        cwd=ROOT / "tests",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr.splitlines()


def test_json_lines_carry_the_ids_and_nothing_to_hide() -> None:
    lines = [json.loads(line) for line in run_process("json")]

    assert [(line["level"], line["logger"]) for line in lines] == [
        ("INFO", "worker.turns"),
        ("ERROR", "worker.turns"),
        ("INFO", "celery.app.trace"),
        ("INFO", "uvicorn.error"),
    ]
    replied, failed, retry, started = lines
    assert replied["message"] == f"turn of session {SESSION} replied"
    assert (replied["inbound_id"], replied["session_id"]) == (42, SESSION)
    assert list(replied) == ["time", "level", "logger", "message", "inbound_id", "session_id"]
    assert failed["exception"].endswith(
        "ValueError: refused whatsapp:+316•••••678 with key [redacted]"
    )
    assert retry["message"] == "Task x retry: SendError('The To number 3161••••678')"
    assert list(retry) == list(started) == ["time", "level", "logger", "message"]


def test_text_lines_append_the_ids_for_a_terminal() -> None:
    lines = run_process("text")

    time, replied = lines[0].split(" ", 1)
    assert time.endswith("Z") and "T" in time
    assert replied == (
        f"INFO worker.turns turn of session {SESSION} replied [inbound_id=42 session_id={SESSION}]"
    )
    assert lines[1].endswith(f"ERROR worker.turns unexpected [inbound_id=42 session_id={SESSION}]")
    assert "ValueError: refused whatsapp:+316•••••678 with key [redacted]" in lines
    assert SECRET not in "\n".join(lines) and "31612345678" not in "\n".join(lines)


def test_numbers_are_masked_wherever_they_appear() -> None:
    assert mask_numbers("whatsapp:+31612345678") == "whatsapp:+316•••••678"
    assert mask_numbers("The 'To' number 14155238886 is invalid") == (
        "The 'To' number 1415••••886 is invalid"
    )
    assert mask_numbers("turn 42 of 3 attempts") == "turn 42 of 3 attempts"
    assert mask_numbers(None) == "-"


def test_ids_and_durations_are_not_numbers_to_mask() -> None:
    assert mask_numbers(f"session {SESSION} is leased") == f"session {SESSION} is leased"
    assert mask_numbers("succeeded in 0.0123456789s") == "succeeded in 0.0123456789s"
