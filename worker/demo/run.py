"""`make demo`: real conversations through the real receiver and worker, on embedded
defaults (SQLite file, file-system broker, offline model, console channel) unless the
environment configures real ones.

A Twilio leg, then a Meta leg: each message is signed exactly as the provider signs it
and posted over HTTP; the demo waits for the worker's reply and finally prints each
conversation's transcript read back from `session_items`, then the dashboard URL of the
first conversation and a builder token to sign in with (kept serving with `serve=True`
until Ctrl-C).

With the Demo Bakery answering on the console, the Twilio leg also sends a voice note, a
photo with a caption and a PDF, which the worker fetches from the demo's own media
server (see `media_server` for why that redirects nothing else). The Meta leg sends
what only Meta carries: a catalog order and a Flow reply. The demo's settings are its
own process's, read from the environment like any other (`get_settings`); the receiver
and the worker it starts get that environment plus the demo's secrets and hosts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
import uuid
from typing import Any

import click
import httpx
from kombu.utils.url import maybe_sanitize_url
from pydantic import SecretStr
from sqlalchemy import select

from db import migrate
from db.core.settings import Settings, get_settings
from db.engine import create_engine, create_sessionmaker
from db.models import InboundMessage, InboundStatus, OutboundMessage
from db.offered_options import OfferedOptions, numbered
from db.sessions import session_items_of
from db.transcript import one_line, transcript_line
from worker.demo.bakery import (
    DEFAULT_QUESTION,
    DemoFailure,
    DemoTarget,
    demo_target,
    demo_token,
    write_private,
)
from worker.demo.media_server import PDF, PHOTO, VOICE_NOTE, MediaServer
from worker.demo.metrics_line import MetricsEndpoints
from worker.demo.preflight import check_model_api, check_port_free
from worker.demo.processes import (
    DemoProcess,
    free_port,
    last_error,
    serve_until_interrupted,
    start,
    wait_until_serving,
)
from worker.demo.signed_requests import (
    Attached,
    SignedRequest,
    meta_flow_reply,
    meta_message,
    meta_order,
    meta_text,
    twilio_message,
)

DEMO_SECRET = "demo-secret-not-for-production"
DEMO_ADMIN_TOKEN_FILE = "demo-admin-token"
REPLY_TIMEOUT_SECONDS = 60.0


def run_demo(
    *,
    serve: bool = False,
    builder_id: uuid.UUID | None = None,
    question: str = DEFAULT_QUESTION,
    port: int | None = None,
) -> int:
    """Converse with `builder_id` (or the Demo Bakery) through a receiver and a worker
    started here; `question` is asked on the first leg, for its documents to answer."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _describe(settings)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the terminal shows the demo
    try:
        if port is not None:
            check_port_free(port, "choose another (make demo PORT=…, wabot demo --port …)")
        if settings.worker_metrics_port is not None:
            check_port_free(settings.worker_metrics_port, "change WORKER_METRICS_PORT")
        check_model_api(settings)
        migrate.upgrade()
        target = asyncio.run(demo_target(settings, builder_id))
    except DemoFailure as error:
        click.echo(f"demo failed: {error}", err=True)
        return 1
    # The files go only where the worker fetches them with no credentials: the Demo
    # Bakery's Twilio number, answered on the console.
    media = MediaServer() if builder_id is None and not settings.twilio_can_send else None
    demo = Demo(settings, target, port=port or free_port(), media=media)
    logs = settings.data_dir.resolve()
    receiver = start(
        "receiver", ["serve", "--port", str(demo.port)], demo.env, logs / "demo-receiver.log"
    )
    worker = start("worker", ["worker", "--concurrency=4"], demo.env, logs / "demo-worker.log")
    processes = demo.processes = [receiver, worker]
    try:
        wait_until_serving(demo.base_url, receiver)
        click.echo(f"talking to builder {target.name!r} ({target.builder_id})")
        sessions = []
        if target.twilio_address is not None:
            sessions.append(demo.twilio_leg(target.twilio_address, question))
        if target.meta_phone_number_id is not None:
            asked = question if not sessions else None
            sessions.append(demo.meta_leg(target.meta_phone_number_id, asked))
        click.echo("\nEach last reply recalls the first message: history came from session_items.")
        demo.show_where_to_look(sessions[0])
        if serve:
            click.echo("Serving the dashboard and the metrics until Ctrl-C.")
            serve_until_interrupted(processes)
        else:
            click.echo("(`make demo SERVE=1` keeps the dashboard and the metrics up to look at.)")
    except DemoFailure as failure:
        click.echo(f"\ndemo failed: {failure}\nlogs: {logs}/demo-*.log", err=True)
        return 1
    finally:
        for each in processes:
            each.process.terminate()
        for each in processes:
            each.process.wait(timeout=30)
        if media is not None:
            media.close()
    return 0


class Demo:
    """One demo run: the secrets its receiver checks, where it serves, what it prints."""

    def __init__(
        self, settings: Settings, target: DemoTarget, *, port: int, media: MediaServer | None
    ) -> None:
        self.settings = settings
        self.target = target
        self.media = media
        self.processes: list[DemoProcess] = []
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.twilio_token = _secret_or_demo(settings.twilio_auth_token)
        self.meta_secret = _secret_or_demo(settings.meta_app_secret)
        worker_metrics_port = settings.worker_metrics_port or free_port()
        metrics_token = settings.metrics_token
        self.metrics = MetricsEndpoints(
            receiver_url=f"{self.base_url}/metrics",
            worker_url=f"http://127.0.0.1:{worker_metrics_port}/metrics",
            token=metrics_token.get_secret_value() if metrics_token else secrets.token_urlsafe(24),
        )
        self.env = {
            **os.environ,
            "TWILIO_AUTH_TOKEN": self.twilio_token,
            "META_APP_SECRET": self.meta_secret,
            "META_VERIFY_TOKEN": _secret_or_demo(settings.meta_verify_token),
            "PUBLIC_BASE_URL": self.base_url,
            "METRICS_TOKEN": self.metrics.token,
            "WORKER_METRICS_PORT": str(worker_metrics_port),
        }
        if media is not None:
            self.env["TWILIO_MEDIA_HOSTS"] = f"{settings.twilio_media_hosts},{media.host}"
        self.admin_token: str | None = None
        if settings.admin_token is None:
            # This demo's own admin sign-in: in its receiver's environment only, so it
            # signs in nowhere else and ends with the demo.
            self.admin_token = secrets.token_urlsafe(24)
            self.env["ADMIN_TOKEN"] = self.admin_token
            write_private(settings.data_dir / DEMO_ADMIN_TOKEN_FILE, self.admin_token)

    def twilio_leg(self, address: str, question: str) -> uuid.UUID:
        """Ada writes to `address` over Twilio; returns her session's id."""
        click.echo("\n── Twilio leg ──")
        user = f"whatsapp:+1500555{secrets.randbelow(10_000):04d}"
        messages: list[tuple[str, Attached | None]] = [
            ("Hi! My name is Ada.", None),
            ("What time is it?", None),
            (question, None),
            ("What times do you have?", None),
            ("2", None),
        ]
        if self.media is not None:
            media = self.media
            messages += [
                ("", Attached(media.add(VOICE_NOTE), "audio/ogg", "voice note voice_note.ogg")),
                ("Do you have this cake?", Attached(media.add(PHOTO), "image/jpeg", "photo.jpg")),
                ("My order", Attached(media.add(PDF), "application/pdf", "PDF order.pdf")),
            ]
        messages.append(("Do you remember my name?", None))
        replies = [
            self._converse(
                twilio_message(
                    text,
                    user=user,
                    to=address,
                    base_url=self.base_url,
                    auth_token=self.target.twilio_auth_token or self.twilio_token,
                    attached=attached,
                )
            )
            for text, attached in messages
        ]
        return self._close_leg(user, replies[-1], "Ada")

    def meta_leg(self, phone_number_id: str, question: str | None) -> uuid.UUID:
        """Grace writes to `phone_number_id` over Meta; returns her session's id."""
        click.echo("\n── Meta (WhatsApp Cloud API) leg ──")
        _check_meta_handshake(self.base_url, self.env["META_VERIFY_TOKEN"])
        wa_id = f"1500666{secrets.randbelow(10_000):04d}"
        order = meta_order(
            "demo-bakery",
            [("sourdough", 2, 4.5, "EUR"), ("croissant", 4, 1.8, "EUR")],
            "Pickup on Saturday, please",
        )
        booking = {"date": "2026-12-24", "time": "10:00", "people": "4"}
        messages: list[tuple[dict[str, Any], str | None]] = [
            (meta_text("Hello, I'm Grace."), None),
            (
                {
                    "type": "location",
                    "location": {"latitude": 52.3731, "longitude": 4.8922, "name": "Dam"},
                },
                "(location) Dam, 52.3731, 4.8922",
            ),
            *([(meta_text(question), None)] if question else []),
            (order, "(order) 2 sourdough, 4 croissants: Pickup on Saturday, please"),
            (
                meta_flow_reply(booking, flow_token=secrets.token_hex(8)),
                "(Flow reply) date 2026-12-24, time 10:00, people 4",
            ),
            (meta_text("What's my name?"), None),
        ]
        replies = [
            self._converse(
                meta_message(
                    message,
                    wa_id=wa_id,
                    phone_number_id=phone_number_id,
                    app_secret=self.target.meta_app_secret or self.meta_secret,
                    shown_as=shown_as,
                )
            )
            for message, shown_as in messages
        ]
        return self._close_leg(wa_id, replies[-1], "Grace")

    def show_where_to_look(self, session_id: uuid.UUID) -> None:
        """The dashboard and metrics URLs, with the tokens to read them."""
        token = asyncio.run(demo_token(self.settings, self.target.builder_id))
        metrics = self.metrics
        admin = self.admin_token or "your ADMIN_TOKEN"
        click.echo("\n── Dashboard ──")
        click.echo(f"conversation: {self.base_url}/sessions/{session_id}")
        click.echo(f"try it:       {self.base_url}/builders/{self.target.builder_id}/chat")
        click.echo(f"token:        {token}")
        click.echo(f"sign in:      {self.base_url}/login with the token above (this builder)")
        click.echo(f"admin:        {admin}")
        if self.admin_token is not None:
            click.echo("              (every builder; made for this run, its receiver only)")
        click.echo("\n── Metrics (Prometheus) ──")
        click.echo(f"receiver:     {metrics.receiver_url}")
        click.echo(f"worker:       {metrics.worker_url}")
        click.echo(f'curl -H "Authorization: Bearer {metrics.token}" {metrics.receiver_url}')

    def _converse(self, request: SignedRequest) -> str:
        return _converse(request, self.base_url, self.settings, self.processes)

    def _close_leg(self, user: str, last_reply: str, name: str) -> uuid.UUID:
        """Print the leg's transcript and the metrics so far; its last reply must recall
        the name the user gave in the first message."""
        session_id = asyncio.run(_print_transcript(self.settings, user))
        if name.lower() not in last_reply.lower():
            raise DemoFailure(f"the last reply does not recall the name {name}: {last_reply!r}")
        click.echo(f"\nmetrics: {self.metrics.summary(str(self.target.builder_id))}")
        return session_id


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


def _check_meta_handshake(base_url: str, verify_token: str) -> None:
    """Meta's subscription check: the receiver must echo the challenge."""
    params = {"hub.mode": "subscribe", "hub.verify_token": verify_token, "hub.challenge": "42"}
    response = httpx.get(f"{base_url}/webhooks/meta", params=params, timeout=15)
    click.echo(
        f"GET /webhooks/meta (subscription handshake) → {response.status_code} {response.text}"
    )
    if response.status_code != 200 or response.text != "42":
        raise DemoFailure(f"the Meta handshake failed: {response.status_code} {response.text}")


def _converse(
    request: SignedRequest, base_url: str, settings: Settings, processes: list[DemoProcess]
) -> str:
    """Post one signed webhook and wait for the worker's reply to it."""
    response = request.post(base_url)
    click.echo(
        f"\nuser  > {request.shown_as}   (POST {request.path}, signed → {response.status_code})"
    )
    if response.status_code != 200:
        raise DemoFailure(f"the receiver answered {response.status_code}: {response.text}")
    reply = asyncio.run(_wait_for_reply(settings, request.message_id, processes))
    click.echo(f"agent < {reply}")
    return reply


async def _wait_for_reply(settings: Settings, message_id: str, processes: list[DemoProcess]) -> str:
    """The reply's parts as the user reads them; a failed turn, a stopped process or no
    reply in time is the demo's one-line failure, with the last error known."""
    engine = create_engine(settings.resolved_database_url, pooler=settings.database_pooler)
    deadline = time.monotonic() + REPLY_TIMEOUT_SECONDS
    inbound = None
    try:
        while time.monotonic() < deadline:
            for each in processes:
                each.check()
            async with create_sessionmaker(engine)() as db:
                inbound = await db.scalar(
                    select(InboundMessage).where(InboundMessage.provider_message_id == message_id)
                )
                if inbound is not None and inbound.status == InboundStatus.FAILED:
                    raise DemoFailure(f"the turn failed: {inbound.error}")
                if inbound is not None and inbound.status == InboundStatus.PROCESSED:
                    parts = await db.execute(
                        select(OutboundMessage.text, OutboundMessage.options)
                        .where(OutboundMessage.turn_id == inbound.turn_id)
                        .order_by(OutboundMessage.part)
                    )
                    return "\n".join(_as_shown(text, options) for text, options in parts)
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    waiting = f"no reply within {REPLY_TIMEOUT_SECONDS:g}s"
    if inbound is not None and inbound.error:
        raise DemoFailure(f"{waiting}: attempt {inbound.attempts} failed: {inbound.error}")
    worker = processes[-1]
    raise DemoFailure(f"{waiting}; the worker's last error: {last_error(worker.log)}")


def _as_shown(text: str, options: Any) -> str:
    """A reply part as the user reads it: the options it offers numbered under it."""
    offered = OfferedOptions.from_json(options)
    return numbered(text, offered) if offered is not None else text


async def _print_transcript(settings: Settings, sender: str) -> uuid.UUID:
    engine = create_engine(settings.resolved_database_url, pooler=settings.database_pooler)
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
        text = one_line(line.text) if line.role == "tool" else line.text
        # A message of several lines (a document's text, options) stays in its column.
        text = text.replace("\n", "\n" + " " * 17)
        click.echo(f"  #{item.sequence:<3} {line.role:<9} {text}")
    return inbound.session_id
