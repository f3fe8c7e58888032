"""`wabot builder …` and `wabot channel …` end to end: a real process on Postgres."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import find_channel, get_builder
from tests.conftest import Wabot
from worker.cli.main import main


def create(wabot: Wabot, *options: str) -> str:
    created = wabot(
        "builder", "create", "--name", "Bakery", "--instructions", "Sell bread.", *options, "--json"
    )
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["id"])


async def test_a_builder_is_created_shown_updated_and_deleted(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = create(
        wabot,
        "--temperature",
        "0.3",
        "--max-tokens",
        "300",
        "--history-window",
        "12",
        "--language",
        "dutch",
        "--fallback-reply",
        "We bellen je.",
        "--turns-per-minute",
        "0",
    )
    shown = json.loads(wabot("builder", "show", builder_id, "--json").stdout)
    assert {key: shown[key] for key in ("name", "temperature", "max_tokens", "history_window")} == {
        "name": "Bakery",
        "temperature": 0.3,
        "max_tokens": 300,
        "history_window": 12,
    }
    assert (shown["language"], shown["fallback_reply"], shown["channels"]) == (
        "dutch",
        "We bellen je.",
        [],
    )
    assert (shown["turns_per_minute"], shown["reactions_as_input"]) == (0, False)
    assert shown["voice_replies"] is False
    answering = wabot(
        "builder", "update", builder_id, "--reactions-as-input", "--voice-replies", "--json"
    )
    assert json.loads(answering.stdout)["reactions_as_input"] is True
    assert json.loads(answering.stdout)["voice_replies"] is True

    updated = wabot(
        "builder",
        "update",
        builder_id,
        "--name",
        "Bakery & Co",
        "--reset",
        "temperature",
        "--reset",
        "history-window",
        "--reset",
        "turns-per-minute",
        "--no-reactions-as-input",
        "--no-voice-replies",
    )
    assert (updated.returncode, updated.stdout.strip()) == (0, f"updated {builder_id}")
    async with db_sessions() as db:
        stored = await get_builder(uuid.UUID(builder_id), db=db)
    assert stored is not None
    assert (stored.name, stored.temperature, stored.history_window, stored.max_tokens) == (
        "Bakery & Co",
        None,
        None,
        300,
    )
    assert (stored.turns_per_minute, stored.reactions_as_input) == (None, False)
    assert stored.voice_replies is False
    text = wabot("builder", "show", builder_id).stdout
    assert "temperature: the model's" in text and "history_window: HISTORY_WINDOW (50)" in text
    assert "turns_per_minute: SENDER_TURNS_PER_MINUTE (20)" in text

    other = create(wabot)
    listed = json.loads(wabot("builder", "list", "--json").stdout)
    assert [each["id"] for each in listed] == [builder_id, other]
    assert (
        wabot("builder", "list").stdout.splitlines()[0]
        == f"{builder_id}  Bakery & Co  gpt-4.1-mini"
    )

    refused = wabot("builder", "delete", builder_id, input="n\n")
    assert refused.returncode == 1 and "Aborted" in refused.stderr
    deleted = wabot("builder", "delete", builder_id, "--yes")
    assert (deleted.returncode, deleted.stdout.strip()) == (0, f"deleted {builder_id}")
    gone = wabot("builder", "show", builder_id)
    assert (gone.returncode, gone.stderr.strip()) == (1, f"Error: no builder with id {builder_id}")
    again = wabot("builder", "delete", builder_id, "--yes")
    assert again.returncode == 1


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--temperature", "3"], "Invalid value for '--temperature'"),
        (["--max-tokens", "0"], "Invalid value for '--max-tokens'"),
        (["--turns-per-minute", "-1"], "Invalid value for '--turns-per-minute'"),
        (["--language", "klingon"], "'klingon' is not a text search language"),
        (["--name", "  "], "Invalid value for --name: must not be empty"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(
    wabot: Wabot, args: list[str], complaint: str
) -> None:
    result = wabot("builder", "create", "--name", "B", "--instructions", "I", *args)
    assert result.returncode == 2
    assert complaint in result.stderr
    assert wabot("builder", "list", "--json").stdout.strip() == "[]"


def test_an_update_needs_a_change_and_an_existing_builder(wabot: Wabot) -> None:
    builder_id = create(wabot)
    nothing = wabot("builder", "update", builder_id)
    assert nothing.returncode == 2 and "nothing to change" in nothing.stderr
    contradiction = wabot(
        "builder", "update", builder_id, "--temperature", "1", "--reset", "temperature"
    )
    assert contradiction.returncode == 2 and "contradict" in contradiction.stderr
    missing = str(uuid.uuid4())
    unknown = wabot("builder", "update", missing, "--name", "X")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        f"Error: no builder with id {missing}",
    )
    malformed = wabot("builder", "show", "not-a-uuid")
    assert malformed.returncode == 2 and "'not-a-uuid' is not a valid UUID" in malformed.stderr


async def test_channels_are_listed_and_removed(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = create(wabot)
    other = create(wabot)
    wabot("channel", "add", builder_id, "--provider", "twilio", "--address", "+14155238886")
    wabot("channel", "add", other, "--provider", "meta", "--address", "106540352242922")

    listed = json.loads(wabot("channel", "list", builder_id, "--json").stdout)
    assert [(each["provider"], each["address"]) for each in listed] == [
        ("twilio", "whatsapp:+14155238886")
    ]
    everything = wabot("channel", "list").stdout.splitlines()
    assert everything == [
        f"twilio  whatsapp:+14155238886  {builder_id}  global credentials",
        f"meta  106540352242922  {other}  global credentials",
    ]

    removed = wabot("channel", "remove", "--provider", "twilio", "--address", "+14155238886")
    assert (removed.returncode, removed.stdout.strip()) == (
        0,
        "removed twilio whatsapp:+14155238886",
    )
    async with db_sessions() as db:
        assert await find_channel("twilio", "whatsapp:+14155238886", db=db) is None
    again = wabot("channel", "remove", "--provider", "twilio", "--address", "+14155238886")
    assert (again.returncode, again.stderr.strip()) == (
        1,
        "Error: twilio address whatsapp:+14155238886 is not routed",
    )
    malformed = wabot("channel", "remove", "--provider", "twilio", "--address", "+0")
    assert malformed.returncode == 2 and "Invalid value for --address" in malformed.stderr
    missing = str(uuid.uuid4())
    unknown = wabot("channel", "list", missing)
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        f"Error: no builder with id {missing}",
    )


@pytest.mark.parametrize(
    "command",
    [
        ["builder", "create"],
        ["builder", "list"],
        ["builder", "show"],
        ["builder", "update"],
        ["builder", "delete"],
        ["channel", "add"],
        ["channel", "list"],
        ["channel", "remove"],
        ["channel", "update"],
        ["channel", "new-key"],
        ["channel", "rekey"],
        ["docs", "add"],
        ["docs", "list"],
        ["docs", "remove"],
        ["inbox"],
        ["conversation", "list"],
        ["conversation", "show"],
    ],
)
def test_every_command_explains_itself(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith(f"Usage: main {' '.join(command)}")
