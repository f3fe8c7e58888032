"""`make demo`: real conversations through the real receiver and worker, on embedded
defaults (SQLite file, file-system broker, offline model, console channel) unless the
environment configures real ones.

A Twilio leg, then a Meta leg: each message is signed exactly as the provider signs it
and posted over HTTP; the demo waits for the worker's reply and finally prints each
conversation's transcript read back from `session_items`, then the dashboard URL of the
first conversation and a builder token to sign in with (kept serving with `serve=True`
until Ctrl-C).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click
import httpx
from kombu.utils.url import maybe_sanitize_url
from pydantic import SecretStr
from sqlalchemy import select

from db import migrate
from db.builders import add_channel, create_builder, find_channel
from db.conversations import session_items_of
from db.engine import create_engine, create_sessionmaker
from db.models import InboundMessage, InboundStatus, OutboundMessage
from db.settings import Settings, get_settings
from db.tokens import create_token
from db.transcript import transcript_line
from worker.demo_requests import (
    DEMO_META_PHONE_NUMBER_ID,
    DEMO_TWILIO_NUMBER,
    SignedRequest,
    meta_message,
    meta_text,
    twilio_message,
)

DEMO_SECRET = "demo-secret-not-for-production"
TWILIO_LEG = ("Hi! My name is Ada.", "What time is it?", "Do you remember my name?")
META_LEG = (
    meta_text("Hello, I'm Grace."),
    {"type": "location", "location": {"latitude": 52.3731, "longitude": 4.8922, "name": "Dam"}},
    meta_text("What's my name?"),
)
REPLY_TIMEOUT_SECONDS = 60.0


class DemoFailure(Exception):
    pass


def run_demo(*, serve: bool = False) -> int:
    settings = get_settings()
    twilio_token = _secret_or_demo(settings.twilio_auth_token)
    meta_secret = _secret_or_demo(settings.meta_app_secret)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _describe(settings)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the terminal shows the demo
    migrate.upgrade()
    builder_id = asyncio.run(_ensure_demo_builder(settings))

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": twilio_token,
        "META_APP_SECRET": meta_secret,
        "META_VERIFY_TOKEN": _secret_or_demo(settings.meta_verify_token),
        "PUBLIC_BASE_URL": base_url,
    }
    logs = settings.data_dir.resolve()
    processes = [
        _start("receiver", ["serve", "--port", str(port)], env, logs / "demo-receiver.log"),
        _start("worker", ["worker", "--concurrency=4"], env, logs / "demo-worker.log"),
    ]
    try:
        _wait_until_serving(base_url)
        click.echo("\n── Twilio leg ──")
        twilio_user = f"whatsapp:+1500555{secrets.randbelow(10_000):04d}"
        twilio_replies = [
            _converse(
                twilio_message(text, user=twilio_user, base_url=base_url, auth_token=twilio_token),
                base_url,
                settings,
            )
            for text in TWILIO_LEG
        ]
        twilio_session = asyncio.run(_print_transcript(settings, twilio_user))

        click.echo("\n── Meta (WhatsApp Cloud API) leg ──")
        _check_meta_handshake(base_url, env["META_VERIFY_TOKEN"])
        meta_user = f"1500666{secrets.randbelow(10_000):04d}"
        meta_replies = [
            _converse(
                meta_message(message, wa_id=meta_user, app_secret=meta_secret), base_url, settings
            )
            for message in META_LEG
        ]
        asyncio.run(_print_transcript(settings, meta_user))
        if "ada" not in twilio_replies[-1].lower() or "grace" not in meta_replies[-1].lower():
            raise DemoFailure("a last reply does not recall the name from the first")
        click.echo("\nEach last reply recalls the first message: history came from session_items.")
        token = asyncio.run(_demo_token(settings, builder_id))
        click.echo("\n── Dashboard ──")
        click.echo(f"conversation: {base_url}/sessions/{twilio_session}")
        click.echo(f"try it:       {base_url}/builders/{builder_id}/chat")
        click.echo(f"token:        {token}")
        if serve:
            click.echo("Serving the dashboard until Ctrl-C.")
            _serve_until_interrupted(processes)
        else:
            click.echo("(`make demo SERVE=1` keeps the dashboard up to look at it.)")
    except DemoFailure as failure:
        click.echo(f"\ndemo failed: {failure}\nlogs: {logs}/demo-*.log", err=True)
        return 1
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    return 0


def _serve_until_interrupted(processes: list[subprocess.Popen[bytes]]) -> None:
    """Block until Ctrl-C (SIGINT), or until the receiver or the worker stops by itself."""
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\nstopping")
        return
    raise DemoFailure("the receiver or the worker stopped while serving")


async def _demo_token(settings: Settings, builder_id: uuid.UUID) -> str:
    """A fresh builder token for the demo bakery, as `wabot token create` makes one."""
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine).begin() as db:
            return (await create_token(builder_id, name="demo", db=db)).secret
    finally:
        await engine.dispose()


def _secret_or_demo(secret: SecretStr | None) -> str:
    """The configured secret, or a fixed one for the embedded demo."""
    return secret.get_secret_value() if secret else DEMO_SECRET


def _describe(settings: Settings) -> None:
    model = "OpenAI" if settings.openai_api_key else "offline (no OPENAI_API_KEY)"
    twilio = "Twilio" if settings.twilio_can_send else "console (no Twilio credentials)"
    meta = "Meta" if settings.meta_access_token else "console (no META_ACCESS_TOKEN)"
    click.echo(f"database: {maybe_sanitize_url(settings.resolved_database_url)}")
    click.echo(f"broker:   {maybe_sanitize_url(settings.resolved_broker_url)}")
    click.echo(f"model:    {model}")
    click.echo(f"replies:  {twilio} / {meta}")


async def _ensure_demo_builder(settings: Settings) -> uuid.UUID:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine).begin() as db:
            twilio = await find_channel("twilio", DEMO_TWILIO_NUMBER, db=db)
            if twilio is None:
                bakery = await create_builder(
                    name="Demo Bakery",
                    instructions="You are the friendly assistant of a small bakery.",
                    model=settings.default_model,
                    db=db,
                )
                twilio = await add_channel(
                    bakery.id, provider="twilio", address=DEMO_TWILIO_NUMBER, db=db
                )
            if await find_channel("meta", DEMO_META_PHONE_NUMBER_ID, db=db) is None:
                await add_channel(
                    twilio.builder_id, provider="meta", address=DEMO_META_PHONE_NUMBER_ID, db=db
                )
            return twilio.builder_id
    finally:
        await engine.dispose()


def _start(name: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    click.echo(f"starting the {name} (log: {log})")
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _wait_until_serving(base_url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise DemoFailure("the receiver did not start within 30s")


def _check_meta_handshake(base_url: str, verify_token: str) -> None:
    """Meta's subscription check: the receiver must echo the challenge."""
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": "42"}
    response = httpx.get(f"{base_url}/webhooks/meta", params=params, timeout=15)
    click.echo(
        f"GET /webhooks/meta (subscription handshake) → {response.status_code} {response.text}"
    )
    if response.status_code != 200 or response.text != "42":
        raise DemoFailure(f"the Meta handshake failed: {response.status_code} {response.text}")


def _converse(request: SignedRequest, base_url: str, settings: Settings) -> str:
    """Post one signed webhook and wait for the worker's reply to it."""
    response = request.post(base_url)
    click.echo(
        f"\nuser  > {request.shown_as}   (POST {request.path}, signed → {response.status_code})"
    )
    if response.status_code != 200:
        raise DemoFailure(f"the receiver answered {response.status_code}: {response.text}")
    reply = asyncio.run(_wait_for_reply(settings, request.message_id))
    click.echo(f"agent < {reply}")
    return reply


async def _wait_for_reply(settings: Settings, message_id: str) -> str:
    engine = create_engine(settings.resolved_database_url)
    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            async with create_sessionmaker(engine)() as db:
                inbound = await db.scalar(
                    select(InboundMessage).where(InboundMessage.provider_message_id == message_id)
                )
                if inbound is not None and inbound.status == InboundStatus.FAILED:
                    raise DemoFailure(f"the turn failed: {inbound.error}")
                if inbound is not None and inbound.status == InboundStatus.PROCESSED:
                    parts = await db.scalars(
                        select(OutboundMessage.text)
                        .where(OutboundMessage.turn_id == inbound.turn_id)
                        .order_by(OutboundMessage.part)
                    )
                    return "\n".join(parts)
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    raise DemoFailure(f"no reply within {REPLY_TIMEOUT_SECONDS:g}s")


async def _print_transcript(settings: Settings, sender: str) -> uuid.UUID:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            inbound = await db.scalar(
                select(InboundMessage).where(InboundMessage.sender == sender).limit(1)
            )
            assert inbound is not None and inbound.session_id is not None
            items = await session_items_of(inbound.session_id, db=db)
    finally:
        await engine.dispose()
    click.echo(f"\nTranscript of session {inbound.session_id}, read back from session_items:")
    for item in items:
        line = transcript_line(item.item_data)
        click.echo(f"  #{item.sequence:<3} {line.role:<9} {line.text}")
    return inbound.session_id


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
