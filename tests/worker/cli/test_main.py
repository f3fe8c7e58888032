"""The `wabot` command line, run as a user runs it (a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel, get_builder
from db.models import ApiToken
from db.tokens import live_token
from tests.conftest import ROOT, Wabot

Completed = subprocess.CompletedProcess[str]


async def test_create_a_builder_and_route_a_number_to_it(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = wabot(
        "builder",
        "create",
        "--name",
        "Bakery",
        "--instructions",
        "Sell bread.",
        "--unsupported-reply",
        "Text me, please.",
        "--fallback-reply",
        "We'll call you.",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    builder_id = uuid.UUID(json.loads(created.stdout)["id"])
    added = wabot(
        "channel", "add", str(builder_id), "--provider", "twilio", "--address", "+14155238886"
    )
    assert added.returncode == 0, added.stderr
    async with db_sessions() as db:
        builder = await get_builder(builder_id, db=db)
        channel = await find_channel("twilio", "whatsapp:+14155238886", db=db)
    assert builder is not None
    assert (builder.name, builder.model, builder.unsupported_reply, builder.fallback_reply) == (
        "Bakery",
        "gpt-4.1-mini",
        "Text me, please.",
        "We'll call you.",
    )
    assert channel is not None and channel.builder_id == builder_id
    # Spelled otherwise, it is the same number: the CLI normalises as the receiver does.
    again = wabot(
        "channel", "add", str(builder_id), "--provider", "twilio", "--address", " +1 415 523 8886"
    )
    assert again.returncode == 1
    assert again.stderr.strip() == (
        "Error: twilio address whatsapp:+14155238886 is already routed to builder"
        f" 'Bakery' ({builder_id})"
    )


async def test_route_a_meta_phone_number_id(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = wabot("builder", "create", "--name", "B", "--instructions", "I", "--json")
    builder_id = json.loads(created.stdout)["id"]
    added = wabot(
        "channel", "add", builder_id, "--provider", "meta", "--address", "106540352242922"
    )
    assert added.returncode == 0, added.stderr
    async with db_sessions() as db:
        channel = await find_channel("meta", "106540352242922", db=db)
    assert channel is not None and str(channel.builder_id) == builder_id


def test_an_unknown_builder_is_a_one_line_error(wabot: Wabot) -> None:
    missing = str(uuid.uuid4())
    result = wabot("channel", "add", missing, "--provider", "twilio", "--address", "+14155238886")
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: no builder with id {missing}"


@pytest.mark.parametrize(
    ("provider", "address"),
    [("twilio", "whatsapp:14155238886"), ("twilio", "+0123"), ("meta", "+31612345678")],
)
def test_a_malformed_address_is_refused(wabot: Wabot, provider: str, address: str) -> None:
    result = wabot(
        "channel", "add", str(uuid.uuid4()), "--provider", provider, "--address", address
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: Invalid value for --address: "), line


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("whatsapp:+1415555", "'whatsapp:+1415555' is too short for a +1 number"),
        ("+141555501234", "'whatsapp:+141555501234' is too long for a +1 number"),
        ("+3361234", "'whatsapp:+3361234' is too short for a +33 number"),
        ("+9991234567", "'whatsapp:+9991234567' does not start with a country calling code"),
    ],
)
def test_a_number_of_a_length_its_country_never_has_is_refused_with_the_reason(
    wabot: Wabot, address: str, reason: str
) -> None:
    """E.164 allows up to 15 digits, but each country its own lengths: +1 exactly 11."""
    result = wabot(
        "channel", "add", str(uuid.uuid4()), "--provider", "twilio", "--address", address
    )
    assert result.returncode == 2
    assert result.stderr == (f"Error: Invalid value for --address: {reason}\n")


@pytest.mark.parametrize("address", ["+14155550100", "+493012345678", "+5511987654321"])
async def test_numbers_of_a_length_their_country_has_are_routed(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession], address: str
) -> None:
    created = wabot("builder", "create", "--name", "B", "--instructions", "I", "--json")
    builder_id = json.loads(created.stdout)["id"]
    added = wabot("channel", "add", builder_id, "--provider", "twilio", "--address", address)
    assert added.returncode == 0, added.stderr
    async with db_sessions() as db:
        assert await find_channel("twilio", f"whatsapp:{address}", db=db) is not None


def wabot_in(folder: Path, *args: str, env: dict[str, str] | None = None) -> Completed:
    """`wabot ARGS` in `folder` with only `env` (no test database, no `.env`)."""
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        env={"PATH": os.environ["PATH"], "HOME": str(folder), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
    )


def test_version_and_help_with_h(tmp_path: Path) -> None:
    version = wabot_in(tmp_path, "--version")
    assert (version.returncode, version.stdout) == (0, f"wabot {metadata.version('wabot')}\n")
    short, long = wabot_in(tmp_path, "-h"), wabot_in(tmp_path, "--help")
    assert short.returncode == 0 and short.stdout == long.stdout
    assert short.stdout.startswith("Usage: wabot [OPTIONS] COMMAND [ARGS]...")
    assert "-h, --help" in short.stdout and "--version" in short.stdout
    nested = wabot_in(tmp_path, "conversation", "list", "-h")
    assert nested.returncode == 0 and "--builder UUID" in nested.stdout
    # Help needs no valid configuration (it is what a user reads to fix one).
    broken = wabot_in(tmp_path, "-h", env={"ADMIN_TOKEN": "short"})
    assert broken.returncode == 0 and "Usage: wabot" in broken.stdout
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("nonsense",), "Error: No such command 'nonsense'."),
        (
            ("channel", "add", "not-a-uuid", "--provider", "twilio"),
            "Error: Invalid value for 'BUILDER_ID': 'not-a-uuid' is not a valid UUID.",
        ),
        (
            ("channel", "add", str(uuid.UUID(int=1)), "--provider", "twilio"),
            "Error: Missing option '--address'.",
        ),
        (
            ("docs", "add", str(uuid.UUID(int=1)), "missing.md"),
            "Error: Invalid value for 'FILES...': File 'missing.md' does not exist.",
        ),
    ],
)
def test_a_usage_error_is_one_line_and_exits_2(
    tmp_path: Path, args: tuple[str, ...], error: str
) -> None:
    result = wabot_in(tmp_path, *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", error + "\n")


def test_settings_errors_are_said_in_words_one_line_each(tmp_path: Path) -> None:
    result = wabot_in(
        tmp_path,
        "builder",
        "list",
        env={
            "ADMIN_TOKEN": "short",
            "WORKER_CONCURRENCY": "many",
            "OPENAI_TIMEOUT_SECONDS": "0",
            "META_API_VERSION": "24",
            "TYPING_INDICATOR": "perhaps",
        },
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: invalid configuration: WORKER_CONCURRENCY must be a whole number",
        "Error: invalid configuration: OPENAI_TIMEOUT_SECONDS must be greater than 0",
        "Error: invalid configuration: META_API_VERSION must look like v24.0"
        " (the pattern ^v\\d+\\.\\d+$)",
        "Error: invalid configuration: TYPING_INDICATOR must be true or false",
        "Error: invalid configuration: ADMIN_TOKEN must be at least 16 characters",
    ]


def test_db_upgrade_is_quiet_unless_asked(tmp_path: Path) -> None:
    quiet = wabot_in(tmp_path, "db", "upgrade")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    told = wabot_in(fresh, "db", "upgrade", "-v", env={"LOG_FORMAT": "text"})
    assert told.returncode == 0, told.stderr
    assert "Running upgrade  -> " in told.stderr + told.stdout


def test_a_bad_setting_names_its_variable(wabot: Wabot) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "builder",
            "create",
            "--name",
            "x",
            "--instructions",
            "y",
        ],
        env={"PATH": os.environ["PATH"], "DATABASE_URL": "mysql://nope"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT / "tests" / "fixtures",
    )
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


async def test_a_token_is_shown_once_stored_hashed_and_revocable(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    created = wabot("builder", "create", "--name", "B", "--instructions", "I", "--json")
    builder_id = json.loads(created.stdout)["id"]
    issued = wabot("token", "create", builder_id, "--name", "ops", "--json")
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)
    async with db_sessions() as db:
        found = await live_token(token["token"], db=db)
        stored = [row.token_hash for row in await db.scalars(select(ApiToken))]
    assert found is not None and str(found.builder_id) == builder_id and found.name == "ops"
    assert token["token"] not in " ".join(stored)
    listed = wabot("token", "list", builder_id)
    assert listed.stdout.strip() == f"{token['id']}  ops  live"
    listed_json = json.loads(wabot("token", "list", builder_id, "--json").stdout)
    assert listed_json == [{"id": token["id"], "name": "ops", "state": "live"}]

    revoked = wabot("token", "revoke", token["id"])
    assert (revoked.returncode, revoked.stdout.strip()) == (0, f"revoked {token['id']}")
    async with db_sessions() as db:
        assert await live_token(token["token"], db=db) is None
    again = wabot("token", "revoke", token["id"])
    assert again.returncode == 1
    assert again.stderr.strip() == f"Error: no live token with id {token['id']}"
    missing = str(uuid.uuid4())
    nobody = wabot("token", "create", missing)
    assert nobody.stderr.strip() == f"Error: no builder with id {missing}"


def test_db_upgrade_makes_the_embedded_database_on_a_new_machine(tmp_path: Path) -> None:
    """No DATABASE_URL and no `.wabot/` yet: a command says to migrate first; then the
    SQLite file and its folder are made."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}

    def wabot_here(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    too_soon = wabot_here("builder", "list")
    assert too_soon.returncode == 1
    assert too_soon.stderr.strip() == (
        "Error: the database has no wabot tables yet (no such table: builders):"
        " run `wabot db upgrade`"
    )
    upgraded = wabot_here("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / ".wabot" / "wabot.db").is_file()
    current = wabot_here("db", "current")
    assert current.returncode == 0 and "(head)" in current.stdout, current.stderr


def test_a_wrong_log_setting_is_named_before_anything_runs() -> None:
    env = {"PATH": os.environ["PATH"], "LOG_LEVEL": "verbose", "LOG_FORMAT": "xml"}
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "db", "current"],
        env=env,
        cwd=ROOT / "tests" / "fixtures",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: invalid configuration: LOG_LEVEL must be one of 'DEBUG', 'INFO', 'WARNING',"
        " 'ERROR' or 'CRITICAL'",
        "Error: invalid configuration: LOG_FORMAT must be one of 'json' or 'text'",
    ]


def test_an_unreachable_database_is_a_one_line_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker.cli", "builder", "list"],
        env={"PATH": os.environ["PATH"], "DATABASE_URL": "postgresql://127.0.0.1:1/wabot"},
        cwd=ROOT / "tests" / "fixtures",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: the database (DATABASE_URL) cannot be used: connection")
