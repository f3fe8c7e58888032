"""What an operator reads: one line per event, ids to follow, no numbers or secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from db.core.logging_setup import mask_numbers
from db.core.settings import Settings
from tests.services import TEST_DATABASE_URL

ROOT = Path(__file__).resolve().parents[3]
SECRET = "sk-live-0123456789abcdef"
SESSION = "3c6489e8-3b8e-4f2f-9970-12345678901a"
# A process that logs as ours do: its own lines in a correlation context, a library's
# line quoting a number (as Celery's retry line quotes an exception), uvicorn's and
# Celery's `extra`, and a traceback holding a number and the OpenAI key.
PROCESS = f"""
import logging
from db.core.log_context import log_context
from db.core.logging_setup import configure_logging
from db.core.settings import get_settings

configure_logging(get_settings())
ours = logging.getLogger("worker.conversation.turn_runner")
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


MARKER = "Zoë's secret recipe: 3 eggs"
# Database errors as our code meets them, each carrying the marker the way Postgres
# quotes refused values (CONTEXT: JSON data …, DETAIL: Key (…)=(…), `: "…"`), logged
# as a traceback, quoted in a line of ours and in a library's (Celery's retry line).
DATABASE_PROCESS = """
import asyncio, json, logging, os
import psycopg
from sqlalchemy import text
from db.engine import create_engine
from db.core.logging_setup import configure_logging
from db.core.settings import get_settings
from db.statements import StatementConnections

configure_logging(get_settings())
ours = logging.getLogger("worker.conversation.turn_runner")
url, marker = os.environ["WABOT_TEST_DATABASE"], os.environ["WABOT_TEST_MARKER"]

async def refused_json(engine, statements):
    document = json.dumps({"text": marker}).replace("}", ', "n": NaN}')
    async with engine.connect() as conn:
        await conn.execute(text("SELECT CAST(:document AS jsonb)"), {"document": document})

async def refused_duplicate(engine, statements):
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TEMP TABLE seen (value text UNIQUE)"))
        for _ in range(2):
            await conn.execute(text("INSERT INTO seen VALUES (:value)"), {"value": marker})

async def refused_uuid(engine, statements):
    await statements.fetch("SELECT %(id)s::uuid", {"id": marker})

async def main():
    engine = create_engine(url)
    statements = StatementConnections(url, size=1)
    for refuse in (refused_json, refused_duplicate, refused_uuid):
        try:
            await refuse(engine, statements)
        except Exception as error:
            ours.exception("refused")
            ours.warning("retrying: %s", error)
            logging.getLogger("celery.app.trace").info("Task x retry: %r", error)
    await statements.aclose()
    await engine.dispose()
    # A connection of no engine of ours: the log filter still cuts what it quotes.
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        try:
            conn.execute("SELECT %s::uuid", (marker,))
        except psycopg.Error as error:
            ours.warning("refused elsewhere: %s", error, exc_info=True)

asyncio.run(main())
"""


def run_process(log_format: str, process: str = PROCESS) -> list[str]:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(ROOT),
        "LOG_FORMAT": log_format,
        "OPENAI_API_KEY": SECRET,
        "WABOT_TEST_DATABASE": Settings(
            _env_file=None, DATABASE_URL=TEST_DATABASE_URL
        ).resolved_database_url,
        "WABOT_TEST_MARKER": MARKER,
    }
    done = subprocess.run(
        [sys.executable, "-c", process],
        env=env,
        cwd=ROOT / "tests" / "fixtures",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stderr.splitlines()


def test_json_lines_carry_the_ids_and_nothing_to_hide() -> None:
    lines = [json.loads(line) for line in run_process("json")]

    assert [(line["level"], line["logger"]) for line in lines] == [
        ("INFO", "worker.conversation.turn_runner"),
        ("ERROR", "worker.conversation.turn_runner"),
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
        f"INFO worker.conversation.turn_runner turn of session {SESSION} replied "
        f"[inbound_id=42 session_id={SESSION}]"
    )
    assert lines[1].endswith(
        f"ERROR worker.conversation.turn_runner unexpected [inbound_id=42 session_id={SESSION}]"
    )
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


def test_database_errors_say_what_failed_without_the_values() -> None:
    lines = [json.loads(line) for line in run_process("json", DATABASE_PROCESS)]

    logged = json.dumps(lines, ensure_ascii=False)
    assert MARKER not in logged and "recipe" not in logged
    assert len(lines) == 10
    assert "invalid input syntax for type json (22P02)" in lines[0]["exception"]
    assert 'duplicate key value violates unique constraint "seen_value_key"' in lines[4]["message"]
    assert 'invalid input syntax for type uuid: "…" (22P02)' in lines[7]["message"]
    assert lines[9]["message"].startswith("refused elsewhere: invalid input syntax for type uuid")
