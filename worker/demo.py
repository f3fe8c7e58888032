"""`make demo`: a real conversation through the real receiver and worker, on embedded
defaults (SQLite file, file-system broker, offline model, console channel) unless the
environment configures real ones.

The demo signs each request exactly as Twilio does, posts it over HTTP, waits for the
worker's reply, and finally prints the transcript read back from `session_items`.
"""

from __future__ import annotations

import asyncio
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
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from db import migrate
from db.builders import add_channel, create_builder, find_channel
from db.conversations import session_items_of
from db.engine import create_engine, create_sessionmaker
from db.models import InboundMessage, InboundStatus, OutboundMessage
from db.settings import Settings, get_settings
from db.transcript import transcript_line

DEMO_NUMBER = "whatsapp:+14155238886"
DEMO_AUTH_TOKEN = "demo-auth-token-not-a-secret"
CONVERSATION = ("Hi! My name is Ada.", "What time is it?", "Do you remember my name?")
REPLY_TIMEOUT_SECONDS = 60.0


def run_demo() -> int:
    settings = get_settings()
    auth_token = (
        settings.twilio_auth_token.get_secret_value()
        if settings.twilio_auth_token
        else DEMO_AUTH_TOKEN
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    click.echo(f"database: {_redacted(settings.resolved_database_url)}")
    click.echo(f"broker:   {_redacted(settings.resolved_broker_url)}")
    click.echo(
        f"model:    {'OpenAI' if settings.openai_api_key else 'offline (no OPENAI_API_KEY)'}"
    )
    click.echo(
        f"channel:  {'Twilio' if settings.twilio_can_send else 'console (no Twilio credentials)'}"
    )
    migrate.upgrade()
    asyncio.run(_ensure_demo_builder(settings))

    port = _free_port()
    env = {
        **os.environ,
        "TWILIO_AUTH_TOKEN": auth_token,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }
    logs = settings.data_dir.resolve()
    processes = [
        _start("receiver", ["serve", "--port", str(port)], env, logs / "demo-receiver.log"),
        _start("worker", ["worker", "--concurrency=4"], env, logs / "demo-worker.log"),
    ]
    try:
        _wait_until_serving(port)
        user = f"whatsapp:+1500555{secrets.randbelow(10_000):04d}"
        replies = [
            _converse(text, port=port, user=user, auth_token=auth_token, settings=settings)
            for text in CONVERSATION
        ]
        asyncio.run(_print_transcript(settings, user))
    except DemoFailure as failure:
        click.echo(f"\ndemo failed: {failure}\nlogs: {logs}/demo-*.log", err=True)
        return 1
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
    if "ada" not in replies[-1].lower():
        click.echo(
            "\ndemo failed: the third reply does not recall the name from the first", err=True
        )
        return 1
    click.echo("\nThe third reply recalls the first message: history came from session_items.")
    return 0


class DemoFailure(Exception):
    pass


async def _ensure_demo_builder(settings: Settings) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine).begin() as db:
            if await find_channel("twilio", DEMO_NUMBER, db=db) is None:
                bakery = await create_builder(
                    name="Demo Bakery",
                    instructions="You are the friendly assistant of a small bakery.",
                    model=settings.default_model,
                    db=db,
                )
                await add_channel(bakery.id, provider="twilio", address=DEMO_NUMBER, db=db)
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


def _wait_until_serving(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise DemoFailure("the receiver did not start within 30s")


def _converse(text: str, *, port: int, user: str, auth_token: str, settings: Settings) -> str:
    """Post one signed Twilio webhook and wait for the worker's reply to it."""
    url = f"http://127.0.0.1:{port}/webhooks/twilio"
    form = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "AccountSid": "ACdemo",
        "From": user,
        "To": DEMO_NUMBER,
        "Body": text,
        "NumMedia": "0",
        "ProfileName": "Ada",
        "WaId": user.removeprefix("whatsapp:+"),
    }
    signature = RequestValidator(auth_token).compute_signature(url, form)
    response = httpx.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=15)
    click.echo(f"\nuser  > {text}   (POST /webhooks/twilio, signed → {response.status_code})")
    if response.status_code != 200:
        raise DemoFailure(f"the receiver answered {response.status_code}: {response.text}")
    reply = asyncio.run(_wait_for_reply(settings, form["MessageSid"]))
    click.echo(f"agent < {reply}")
    return reply


async def _wait_for_reply(settings: Settings, message_sid: str) -> str:
    engine = create_engine(settings.resolved_database_url)
    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            async with create_sessionmaker(engine)() as db:
                inbound = await db.scalar(
                    select(InboundMessage).where(InboundMessage.provider_message_id == message_sid)
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


async def _print_transcript(settings: Settings, user: str) -> None:
    engine = create_engine(settings.resolved_database_url)
    try:
        async with create_sessionmaker(engine)() as db:
            inbound = await db.scalar(
                select(InboundMessage).where(InboundMessage.sender == user).limit(1)
            )
            assert inbound is not None and inbound.session_id is not None
            items = await session_items_of(inbound.session_id, db=db)
    finally:
        await engine.dispose()
    click.echo(f"\nTranscript of session {inbound.session_id}, read back from session_items:")
    for item in items:
        line = transcript_line(item.item_data)
        click.echo(f"  #{item.sequence:<3} {line.role:<9} {line.text}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _redacted(url: str) -> str:
    """A URL without its password, for printing."""
    return maybe_sanitize_url(url)
