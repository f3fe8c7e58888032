"""The `wabot` command line, run as a user runs it (a real process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel, get_builder
from db.models import ApiToken
from db.tokens import live_token
from tests.conftest import ROOT, Wabot


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
        f"Error: twilio address whatsapp:+14155238886 is already routed to builder Bakery"
        f" ({builder_id})"
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
    assert "Invalid value for --address" in result.stderr


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
    assert "invalid configuration: LOG_LEVEL: " in done.stderr
    assert "LOG_FORMAT: Input should be 'json' or 'text'" in done.stderr


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
