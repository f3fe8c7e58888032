"""Row 2: signed Twilio and Meta webhooks at 64 connections against one uvicorn process
running our receiver, the usual Flask + `.delay()` receiver on one gunicorn process, and
a bare Starlette route (the ceiling), each loaded by wrk with the same kind of requests.

Every request is distinct (its own message id), so afterwards the inbox must hold every
acknowledged message once and the broker one task per inbox row.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import redis

from bench.report import Row
from bench.worker_throughput import forget_queues
from db.builders import add_channel, create_builder
from db.engine import create_engine, create_sessionmaker
from tests.factories import (
    BOT_NUMBER,
    META_PHONE_NUMBER_ID,
    meta_notification,
    meta_signature,
    meta_text_message,
    sign,
    twilio_form,
)
from tests.fakes.meta import APP_SECRET
from tests.fakes.server import free_port
from tests.fakes.twilio import AUTH_TOKEN
from tests.services import REDIS_URL

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "receiver"
# Run as documented (Procfile `web`), and the baseline as it is commonly deployed.
UVICORN_FLAGS = [
    "--host=127.0.0.1",
    "--no-access-log",
    "--http=webhooks.read_deadline:ReadDeadlineProtocol",
]
GUNICORN_FLAGS = ["--workers=1", "--threads=8", "bench.flask_receiver:app"]
CONNECTIONS = 64
WRK_THREADS = 2
PUBLIC_BASE_URL = "https://bench.wabot.example"
# Distinct requests generated per measured second: above the rate each reaches, so our
# receiver and the baseline never see a request twice (the bare route records nothing,
# so it may replay).
DISTINCT_PER_SECOND = {"ours": 9000, "flask": 2000, "bare": 2000}


@dataclass(frozen=True)
class Load:
    """What wrk saw over one run."""

    requests: int
    duration_us: int
    non_2xx: int
    socket_errors: int
    p50_us: int
    p99_us: int

    @property
    def acknowledged(self) -> int:
        return self.requests - self.non_2xx

    @property
    def per_second(self) -> float:
        return self.acknowledged / (self.duration_us / 1e6)


def signed_requests(tag: str, count: int, path_file: Path) -> Path:
    """`count` raw HTTP requests, Twilio and Meta alternating, signed as each provider
    signs, with message ids `{tag}-{n}`; written in the format replay.lua reads."""
    twilio_url = f"{PUBLIC_BASE_URL}/webhooks/twilio"
    with path_file.open("wb") as out:
        for n in range(count):
            sender = f"+3161{n % 500:07d}"
            if n % 2 == 0:
                form = twilio_form(
                    f"Hello, message {n}", sid=f"SM{tag}{n:08d}", sender=f"whatsapp:{sender}"
                )
                body = urlencode(form).encode()
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": sign(twilio_url, form),
                }
                path = "/webhooks/twilio"
            else:
                body = meta_notification(
                    [meta_text_message(f"Hello, message {n}", wamid=f"wamid.{tag}{n:08d}")],
                    wa_id=sender.removeprefix("+"),
                )
                headers = {
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": meta_signature(body),
                }
                path = "/webhooks/meta"
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            raw = (
                f"POST {path} HTTP/1.1\r\nHost: bench.wabot.example\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            out.write(f"{len(raw)}\n".encode() + raw)
    return path_file


def run_wrk(base_url: str, requests: Path, seconds: int) -> Load:
    output = subprocess.run(
        [
            "wrk",
            f"-t{WRK_THREADS}",
            f"-c{CONNECTIONS}",
            f"-d{seconds}s",
            "--timeout=10s",
            "-s",
            str(Path(__file__).with_name("replay.lua")),
            base_url,
            "--",
            str(requests),
            str(WRK_THREADS),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = next(line for line in output.splitlines() if line.startswith("RESULT "))
    return Load(**json.loads(result.removeprefix("RESULT ")))


@contextmanager
def serving(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """Run a server process until the block ends; yields its base URL once it accepts."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), **env},
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command[2]} did not start; see {log}") from None
                time.sleep(0.1)
        time.sleep(0.5)  # lifespan start-up after the socket opens
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _builder_with_both_channels(url: str) -> None:
    engine = create_engine(url)
    async with create_sessionmaker(engine).begin() as db:
        builder = await create_builder(
            name="Bench Bakery", instructions="You help.", model="gpt-test", db=db
        )
        await add_channel(builder.id, provider="twilio", address=BOT_NUMBER, db=db)
        await add_channel(builder.id, provider="meta", address=META_PHONE_NUMBER_ID, db=db)
    await engine.dispose()


def _inbox_rows(dsn: str, tags: list[str]) -> int:
    """Inbox rows whose message ids carry one of `tags`."""
    patterns = [f"SM{tag}%" for tag in tags] + [f"wamid.{tag}%" for tag in tags]
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM inbound_messages WHERE provider_message_id LIKE ANY(%s)",
            (patterns,),
        ).fetchone()
        return int(row[0]) if row else 0


def _measure(
    name: str, command: Callable[[int], list[str]], env: dict[str, str], seconds: int
) -> tuple[Load, list[str]]:
    """Warm the server up for 2 s, then load it for `seconds`; returns wrk's figures of
    the measured run and the tags of (warm-up, measured) message ids."""
    tags = [f"w{uuid.uuid4().hex[:6]}", f"m{uuid.uuid4().hex[:6]}"]
    per_second = DISTINCT_PER_SECOND[name]
    warm = signed_requests(tags[0], 2 * per_second, WORK / f"{name}-warm.req")
    measured = signed_requests(tags[1], seconds * per_second, WORK / f"{name}.req")
    port = free_port()
    with serving(command(port), env, port, WORK / f"{name}.log") as base_url:
        run_wrk(base_url, warm, 2)
        load = run_wrk(base_url, measured, seconds)
    return load, tags


def run(url: str, dsn: str, *, quick: bool) -> list[Row]:
    seconds = 4 if quick else 10
    asyncio.run(_builder_with_both_channels(url))
    WORK.mkdir(parents=True, exist_ok=True)
    ours_queue, flask_queue = (f"bench-{name}-{uuid.uuid4().hex[:6]}" for name in "of")
    env = {
        "DATABASE_URL": url,
        "CELERY_BROKER_URL": REDIS_URL,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "META_APP_SECRET": APP_SECRET,
        "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    }

    def uvicorn(app: str) -> Callable[[int], list[str]]:
        return lambda port: [sys.executable, "-m", "uvicorn", app, *UVICORN_FLAGS, f"--port={port}"]

    def gunicorn(port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", *GUNICORN_FLAGS, f"--bind=127.0.0.1:{port}"]

    bare, _ = _measure("bare", uvicorn("bench.bare_route:app"), env, seconds)
    flask, _ = _measure("flask", gunicorn, {**env, "CELERY_QUEUE": flask_queue}, seconds)
    ours, tags = _measure(
        "ours", uvicorn("webhooks.app:app"), {**env, "CELERY_QUEUE": ours_queue}, seconds
    )
    enqueued = int(redis.Redis.from_url(REDIS_URL).llen(ours_queue))
    forget_queues(ours_queue, flask_queue)
    flask_label = "Flask + .delay()"
    return [
        Row(
            f"receiver: signed webhooks/s, 64 conns, vs {flask_label}",
            "req/s",
            ours.per_second,
            flask.per_second,
            ">= 3",
        ),
        Row(
            "receiver: signed webhooks/s vs a bare Starlette route",
            "req/s",
            ours.per_second,
            bare.per_second,
            "ours >= 3000",
        ),
        Row(
            f"receiver: p50 latency vs {flask_label}",
            "ms",
            ours.p50_us / 1e3,
            flask.p50_us / 1e3,
            "<= 1",
        ),
        Row(
            f"receiver: p99 latency vs {flask_label}",
            "ms",
            ours.p99_us / 1e3,
            flask.p99_us / 1e3,
            "ours <= 50",
        ),
        Row(
            "receiver: acknowledged messages found in the inbox",
            "messages",
            _inbox_rows(dsn, tags[1:]),
            ours.acknowledged,
            ">= 1",
        ),
        Row(
            "receiver: tasks on the broker per inbox row",
            "tasks",
            enqueued,
            _inbox_rows(dsn, tags),
            "== 1",
        ),
    ]
