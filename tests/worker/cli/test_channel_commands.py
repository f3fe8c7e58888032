"""`wabot channel …` with numbers' own provider credentials: stored encrypted, never
shown, replaceable and rekeyable, every mistake a one-line refusal. Real processes on
Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from select import select as ready

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.core.credentials import (
    CredentialsCipher,
    MetaCredentials,
    TwilioCredentials,
    new_key,
)
from db.models import Channel
from tests.conftest import ROOT, Wabot
from tests.worker.cli.test_builder_commands import create

KEY = {"CREDENTIALS_KEY": new_key()}
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-token-3f9c2a"
ACCESS_TOKEN = "meta-access-token-77aa"
APP_SECRET = "meta-app-secret-91be"
TWILIO = ("--provider", "twilio", "--address", "+14155238886")
META = ("--provider", "meta", "--address", "106540352242922")


async def stored(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Channel]:
    """The channels as the database holds them, by provider."""
    async with sessions() as db:
        return {each.provider: each for each in await db.scalars(select(Channel))}


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The refusal: the last line of stderr (usage errors print click's usage first)."""
    return result.stderr.strip().splitlines()[-1]


async def test_own_credentials_are_stored_encrypted_and_never_shown(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = create(wabot)
    twilio = wabot(
        "channel",
        "add",
        builder_id,
        *TWILIO,
        "--account-sid",
        SID,
        "--auth-token",
        "-",
        input=f"{TOKEN}\n",
        env=KEY,
    )
    meta = wabot("channel", "add", builder_id, *META, "--access-token", ACCESS_TOKEN, env=KEY)
    assert (twilio.returncode, meta.returncode) == (0, 0), twilio.stderr + meta.stderr

    rows = await stored(db_sessions)
    for secret in (SID, TOKEN, ACCESS_TOKEN):
        assert all(secret not in str(row.credentials) for row in rows.values())
    cipher = CredentialsCipher(KEY["CREDENTIALS_KEY"])
    assert cipher.decrypt("twilio", str(rows["twilio"].credentials)) == TwilioCredentials(
        SID, TOKEN
    )
    assert cipher.decrypt("meta", str(rows["meta"].credentials)) == MetaCredentials(
        access_token=ACCESS_TOKEN
    )

    text = wabot("channel", "list", env=KEY)
    as_json = wabot("channel", "list", "--json", env=KEY)
    assert text.stdout.splitlines() == [
        f"twilio  whatsapp:+14155238886  {builder_id}  own credentials (account sid: AC…cdef)",
        f"meta  106540352242922  {builder_id}  own credentials "
        "(access token: own, app secret: global)",
    ]
    assert [each["credentials"] for each in json.loads(as_json.stdout)] == [
        {"source": "own", "account_sid": "AC…cdef"},
        {"source": "own", "access_token": "own", "app_secret": "global"},
    ]
    without_key = wabot("channel", "list", "--json")
    assert [each["credentials"] for each in json.loads(without_key.stdout)] == [
        {"source": "own", "error": "cannot be decrypted with CREDENTIALS_KEY"}
    ] * 2
    for result in (twilio, meta, text, as_json, without_key):
        printed = result.stdout + result.stderr
        assert all(secret not in printed for secret in (SID, TOKEN, ACCESS_TOKEN))


async def test_a_secret_typed_at_the_prompt_is_not_echoed(
    database_url: str, db_sessions: async_sessionmaker[AsyncSession], wabot: Wabot
) -> None:
    """`--auth-token -` on a terminal: a hidden prompt (never the shell's history)."""
    builder_id = create(wabot)
    args = ["channel", "add", builder_id, *TWILIO, "--account-sid", SID, "--auth-token", "-"]
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": database_url, **KEY}
    code, screen = typed_at_a_terminal(args, env, prompt=b"Twilio auth token: ", typed=TOKEN)
    assert code == 0, screen
    assert b"Twilio auth token: " in screen and TOKEN.encode() not in screen
    rows = await stored(db_sessions)
    assert CredentialsCipher(KEY["CREDENTIALS_KEY"]).decrypt(
        "twilio", str(rows["twilio"].credentials)
    ) == TwilioCredentials(SID, TOKEN)


def typed_at_a_terminal(
    args: list[str], env: dict[str, str], *, prompt: bytes, typed: str
) -> tuple[int, bytes]:
    """Run `wabot ARGS` on a pseudo-terminal, type `typed` at `prompt`; its exit code and
    everything the terminal showed."""
    primary, replica = os.openpty()
    # The child makes the terminal its controlling one, as a login shell does, so the
    # prompt reads /dev/tty with echo off.
    become_terminal = (
        "import fcntl, os, sys, termios; os.setsid(); fcntl.ioctl(0, termios.TIOCSCTTY, 0);"
        "os.execv(sys.executable, [sys.executable, '-m', 'worker.cli', *sys.argv[1:]])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", become_terminal, *args],
        stdin=replica,
        stdout=replica,
        stderr=replica,
        cwd=ROOT / "tests" / "fixtures",
        env=env,
    )
    os.close(replica)
    try:
        screen = read_terminal(primary, until=prompt)
        os.write(primary, f"{typed}\n".encode())
        screen += read_terminal(primary)
        return process.wait(timeout=60), screen
    finally:
        process.kill()
        os.close(primary)


def read_terminal(terminal: int, *, until: bytes | None = None, timeout: float = 30.0) -> bytes:
    """What the terminal shows until `until` appears, or until the other side closes."""
    screen = b""
    deadline = time.monotonic() + timeout
    while until is None or until not in screen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not ready([terminal], [], [], remaining)[0]:
            raise AssertionError(f"the terminal showed no {until!r}: {screen!r}")
        try:
            chunk = os.read(terminal, 1024)
        except OSError:  # EIO: the child exited and closed the terminal
            chunk = b""
        if not chunk:
            if until is None:
                return screen
            raise AssertionError(f"the terminal closed before {until!r}: {screen!r}")
        screen += chunk
    return screen


@pytest.mark.parametrize(
    ("args", "env", "input", "code", "complaint"),
    [
        (
            [*TWILIO, "--access-token", "x"],
            KEY,
            None,
            2,
            "Error: --access-token is a meta option; a twilio channel takes --account-sid and "
            "--auth-token",
        ),
        (
            [*META, "--account-sid", SID, "--auth-token", "x"],
            KEY,
            None,
            2,
            "Error: --account-sid is a twilio option; a meta channel takes --access-token and "
            "--app-secret",
        ),
        (
            [*TWILIO, "--account-sid", "AC123", "--auth-token", "x"],
            KEY,
            None,
            2,
            "Error: Invalid value for --account-sid: a Twilio account SID is AC followed by 32 "
            "hexadecimal digits",
        ),
        (
            [*TWILIO, "--account-sid", SID],
            KEY,
            None,
            2,
            "Error: --account-sid needs --auth-token (the account's auth token)",
        ),
        (
            [*TWILIO, "--auth-token", "x"],
            KEY,
            None,
            2,
            "Error: --auth-token needs --account-sid (the account it belongs to)",
        ),
        (
            [*TWILIO, "--account-sid", SID, "--auth-token", "-"],
            KEY,
            "\n",
            2,
            "Error: the Twilio auth token is empty",
        ),
        (
            [*META, "--app-secret", APP_SECRET],
            None,
            None,
            1,
            "Error: CREDENTIALS_KEY is not set: a channel's own credentials are stored "
            "encrypted with it (make one with `wabot channel new-key` and set "
            "CREDENTIALS_KEY to it)",
        ),
        (
            [*META, "--app-secret", APP_SECRET],
            {"CREDENTIALS_KEY": f"{KEY['CREDENTIALS_KEY']},not-a-key"},
            None,
            1,
            "Error: invalid configuration: CREDENTIALS_KEY: key 2 of 2 is not a "
            "Fernet key (32 url-safe base64-encoded bytes; make one with `wabot channel "
            "new-key`)",
        ),
    ],
)
def test_bad_credentials_are_refused_with_one_line_before_anything_else(
    wabot: Wabot,
    args: list[str],
    env: dict[str, str] | None,
    input: str | None,
    code: int,
    complaint: str,
) -> None:
    """Refused before the builder is even looked up (this one does not exist)."""
    result = wabot("channel", "add", str(uuid.uuid4()), *args, input=input, env=env)
    assert (result.returncode, error_line(result)) == (code, complaint)
    if code == 1:
        assert result.stderr.strip() == complaint
    assert KEY["CREDENTIALS_KEY"] not in result.stderr and APP_SECRET not in result.stderr


async def test_update_replaces_credentials_and_keeps_the_channel(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = create(wabot)
    wabot(
        "channel", "add", builder_id, *TWILIO, "--account-sid", SID, "--auth-token", TOKEN, env=KEY
    )
    wabot(
        "channel",
        "add",
        builder_id,
        *META,
        "--access-token",
        ACCESS_TOKEN,
        "--app-secret",
        APP_SECRET,
        env=KEY,
    )
    before = await stored(db_sessions)
    cipher = CredentialsCipher(KEY["CREDENTIALS_KEY"])

    rotated = wabot("channel", "update", *TWILIO, "--auth-token", "-", input="fresh\n", env=KEY)
    assert (rotated.returncode, rotated.stdout.strip()) == (
        0,
        "updated twilio whatsapp:+14155238886: it uses its own credentials",
    )
    meta = wabot("channel", "update", *META, "--access-token", "fresh-access", env=KEY)
    assert meta.returncode == 0, meta.stderr
    after = await stored(db_sessions)
    assert {p: row.id for p, row in after.items()} == {p: row.id for p, row in before.items()}
    assert cipher.decrypt("twilio", str(after["twilio"].credentials)) == TwilioCredentials(
        SID, "fresh"
    )
    assert cipher.decrypt("meta", str(after["meta"].credentials)) == MetaCredentials(
        access_token="fresh-access", app_secret=APP_SECRET
    )

    back = wabot("channel", "update", *TWILIO, "--global-credentials")
    assert (
        back.stdout.strip()
        == "updated twilio whatsapp:+14155238886: it uses the global credentials"
    )
    assert (await stored(db_sessions))["twilio"].credentials is None

    refusals = {
        "Error: --auth-token needs --account-sid: this channel uses the global credentials": (
            wabot("channel", "update", *TWILIO, "--auth-token", "x", env=KEY)
        ),
        "Error: nothing to change: give new credentials or --global-credentials": (
            wabot("channel", "update", *META)
        ),
        "Error: --global-credentials contradicts new credentials": (
            wabot("channel", "update", *META, "--app-secret", "x", "--global-credentials")
        ),
        "Error: meta address 999999 is not routed": wabot(
            "channel",
            "update",
            "--provider",
            "meta",
            "--address",
            "999999",
            "--app-secret",
            "x",
            env=KEY,
        ),
        "Error: the channel's credentials cannot be decrypted with CREDENTIALS_KEY (none of "
        "its keys is the one they were encrypted with); give --access-token and --app-secret "
        "to replace them": wabot(
            "channel",
            "update",
            *META,
            "--app-secret",
            "x",
            env={"CREDENTIALS_KEY": new_key()},
        ),
    }
    for complaint, result in refusals.items():
        assert (result.returncode != 0, error_line(result)) == (True, complaint)
    assert (await stored(db_sessions))["meta"].credentials == after["meta"].credentials


async def test_rekey_moves_every_channel_to_the_first_key(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = create(wabot)
    wabot(
        "channel", "add", builder_id, *TWILIO, "--account-sid", SID, "--auth-token", TOKEN, env=KEY
    )
    wabot("channel", "add", builder_id, *META, "--app-secret", APP_SECRET, env=KEY)
    old = await stored(db_sessions)
    newer = new_key()

    rekeyed = wabot(
        "channel", "rekey", env={"CREDENTIALS_KEY": f"{newer},{KEY['CREDENTIALS_KEY']}"}
    )
    assert (rekeyed.returncode, rekeyed.stdout.strip()) == (
        0,
        "rekeyed 2 channel(s) with the first key of CREDENTIALS_KEY",
    )
    rows = await stored(db_sessions)
    only_newer = CredentialsCipher(newer)
    assert only_newer.decrypt("twilio", str(rows["twilio"].credentials)) == TwilioCredentials(
        SID, TOKEN
    )
    assert only_newer.decrypt("meta", str(rows["meta"].credentials)) == MetaCredentials(
        app_secret=APP_SECRET
    )
    assert rows["twilio"].credentials != old["twilio"].credentials

    stale = wabot("channel", "rekey", env=KEY)
    assert (stale.returncode, stale.stderr.strip()) == (
        1,
        "Error: rekeyed 0 channel(s) with the first key of CREDENTIALS_KEY; left 2 that no key "
        "of CREDENTIALS_KEY decrypts: twilio whatsapp:+14155238886, meta 106540352242922",
    )
    unset = wabot("channel", "rekey")
    assert unset.returncode == 1 and error_line(unset).startswith(
        "Error: CREDENTIALS_KEY is not set"
    )


def test_new_key_prints_a_fresh_fernet_key(wabot: Wabot) -> None:
    first, second = wabot("channel", "new-key"), wabot("channel", "new-key")
    assert (first.returncode, second.returncode) == (0, 0)
    keys = [first.stdout.strip(), second.stdout.strip()]
    assert keys[0] != keys[1]
    for key in keys:
        assert Fernet(key).decrypt(Fernet(key).encrypt(b"works")) == b"works"
