"""Rows 3 and 4: our worker against the naive design (`bench/naive_worker.py`) on
one host, with a fake model that answers after 500 ms and after 0 ms, and whether our
worker's memory holds still over thousands of messages; then the media rows: the same
500 ms load with 20% voice notes (300 ms fake transcription) and 10% photos against the
text-only one, and a worker process's memory while 16 MB voice notes stream through.

Both designs run as real Celery processes on Redis and Postgres and talk to a fake
OpenAI and a fake Twilio served from this process. The throughput rows are closed loops:
each conversation sends its next message once the fake Twilio has received the reply to
the previous one, so no two of its messages are ever coalesced into one turn.

Ours carries 200 conversations (two `wabot worker` processes, see WORKER_CONCURRENCY);
the naive design carries one per prefork child, so it runs 2 at 500 ms (more would only
queue) and 4 at 0 ms (so its children never wait on the closed loop). The targets are
issue 17's: 120 msg/s (35× naive) at a 500 ms model, 0.18× its CPU per message, and p50
latency within 2× naive at that load. A closed loop cannot show that latency: by
Little's law its 200 conversations take 200 / throughput seconds a round trip whatever
the worker does, and its worker answers a conversation's next message within the turn
that holds it, the cheap path. So the latency rows come from an open load: messages
arriving at random at 120 msg/s from 400 users, each writing again only once answered,
as WhatsApp users do; each message is then a task of its own that takes the
conversation, the path most messages take in production. Overrun, an open load turns
into a closed one (users answered write again before their turn has closed), so a
second one runs at 60 msg/s, a rate the workers carry: there every message is its own
task. The naive design's latency is its unqueued one.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

import redis
import redis.asyncio
from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
from celery import Celery
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import Response

from bench.media_load import (
    PHOTO,
    TRANSCRIPTION_DELAY_SECONDS,
    VOICE_NOTE,
    Attached,
    large_voice_note,
    mixed,
)
from bench.naive_worker import NAIVE_TASK
from bench.report import Row
from db.core.settings import Settings
from db.engine import create_engine, create_sessionmaker
from db.statements import StatementConnections
from tests.factories import BOT_NUMBER, builder_with_channel, twilio_form
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.services import REDIS_URL
from tests.waiting import wait_for_log
from webhooks.inbox_writer import InboxWriter
from webhooks.providers.twilio import parse_inbound
from worker.celery_app import create_celery

DATABASE = "wabot_bench_worker"
ROOT = Path(__file__).resolve().parents[1]
MODEL_DELAY_SECONDS = 0.5
PROCESSES = 2
CONVERSATIONS = 200
WORKER_CONCURRENCY = 100
"""Task threads per process: a conversation holds one for its whole turn, model call
included, so 2 × 100 carry all 200 conversations at once. A closed-loop user's next
message usually arrives before its conversation's turn has closed: its task finds the
conversation busy and ends, and the holder answers it next."""
NAIVE_CONCURRENCY = 2
OFFERED_PER_SECOND = 120.0
"""The open load's arrival rate: issue 17's target throughput, at which it asks for
p50 latency within 2× naive."""
CARRIED_PER_SECOND = 60.0
"""An open load the two workers carry on this kind of machine (about two thirds of what
they answer overrun): each message is then a task of its own, the production path,
which neither the closed loop nor an overrun open load takes."""
OPEN_CONVERSATIONS = 400
"""Users of the open load: enough that one is free to write whenever a message is due,
unless replies take 3 s or more (then the load is outrun: see `Load.outrun`)."""
FEW = 4
"""Conversations in flight when our workers' warm, nearly idle RSS is taken."""
REPLY_TIMEOUT_SECONDS = 120.0
JIFFY_MS = 1000 / os.sysconf("SC_CLK_TCK")
LARGE_FILES_EARLY, LARGE_FILES_LATE = 2, 20
"""The 16 MB voice notes after which the media worker's RSS is taken, then compared."""


class Replies:
    """Replies as the fake Twilio receives them, handed to the conversation awaiting
    each one (on the driver's loop) with the time it arrived. The fake model says back
    what it read (`You said: …`), the message's text on a line of its own when a file
    came with it: a reply answers the message whose text is one of its lines."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._awaited: dict[str, tuple[str, asyncio.Future[float]]] = {}

    def attach(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self._loop = loop

    def expect(self, user: str, text: str) -> asyncio.Future[float]:
        assert self._loop is not None
        arrived = self._loop.create_future()
        self._awaited[user] = (text, arrived)
        return arrived

    def arrived(self, user: str, body: str) -> None:
        """Called on the fake's own thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._resolve, user, body, time.monotonic())

    def _resolve(self, user: str, body: str, at: float) -> None:
        awaited = self._awaited.get(user)
        said = body.removeprefix("You said: ").splitlines()
        if awaited is not None and awaited[0] in said and not awaited[1].done():
            awaited[1].set_result(at)


@dataclass
class ForgetfulOpenAI(FakeOpenAI):
    """The fake model, keeping none of the tens of thousands of requests (and uploads)
    it answers."""

    async def _responses(self, request: Request) -> Response:
        try:
            return await super()._responses(request)
        finally:
            self.requests.clear()

    async def _transcriptions(self, request: Request) -> Response:
        try:
            return await super()._transcriptions(request)
        finally:
            self.transcriptions.clear()


@dataclass
class ReplyTap(FakeTwilio):
    """The fake Twilio, telling `replies` about every message it accepts."""

    replies: Replies = field(default_factory=Replies)

    async def _create_message(self, request: Request) -> Response:
        response = await super()._create_message(request)
        if response.status_code == 201:
            form = dict(parse_qsl((await request.body()).decode()))
            self.replies.arrived(form["To"], form["Body"])
            self.messages.clear()  # the bench sends tens of thousands; keep none
        return response

    async def _media(self, request: Request) -> Response:
        try:
            return await super()._media(request)
        finally:
            self.media_requests.clear()


@dataclass
class Load:
    """Conversations through one design (a closed loop, `start`, or an open one,
    `offer`), and when each reply arrived."""

    send: Callable[[str, str], Awaitable[None]]
    replies: Replies
    workers: list[subprocess.Popen[bytes]]
    answered: int = 0
    outrun: int = 0
    """Arrivals an open load (`offer`) skipped: all its conversations awaited replies."""
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(arrival time, seconds from message in to reply at the fake Twilio)."""
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self, users: range) -> None:
        self._tasks += [asyncio.create_task(self._converse(user_number(n))) for n in users]

    def offer(self, users: range, per_second: float) -> None:
        """Open loop: messages arrive `per_second` on average, at random (Poisson), each
        from one of `users` not awaiting a reply, as WhatsApp users write whenever they
        like. Unlike `start`, the load does not rise to what the workers can carry."""
        self._tasks.append(asyncio.create_task(self._arrive(users, per_second)))

    async def _converse(self, user: str) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            await self._exchange(user, number)

    async def _arrive(self, users: range, per_second: float) -> None:
        idle = deque(users)
        sent = dict.fromkeys(users, 0)
        in_flight: set[asyncio.Task[None]] = set()
        arrivals = random.Random(17)  # the same arrival times in every run
        due = time.monotonic()
        while not self._stop.is_set():
            due += arrivals.expovariate(per_second)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if not idle:
                self.outrun += 1
                continue
            n = idle.popleft()
            sent[n] += 1
            exchange = asyncio.create_task(self._exchange(user_number(n), sent[n]))
            exchange.add_done_callback(lambda _, n=n: idle.append(n))
            in_flight.add(exchange)
            exchange.add_done_callback(in_flight.discard)
        await asyncio.gather(*in_flight)

    async def _exchange(self, user: str, number: int) -> None:
        text = f"message {number}"
        arrived = self.replies.expect(user, text)
        sent_at = time.monotonic()
        await self.send(user, text)
        at = await asyncio.wait_for(arrived, REPLY_TIMEOUT_SECONDS)
        self.answered += 1
        self.samples.append((at, at - sent_at))

    async def reach(self, answered: int = sys.maxsize, *, seconds: float = math.inf) -> None:
        """Wait until `answered` replies arrived or `seconds` passed; fail at once if a
        worker or a conversation died."""
        deadline = time.monotonic() + seconds
        while self.answered < answered and time.monotonic() < deadline:
            for task in self._tasks:
                if task.done():
                    task.result()
            for process in self.workers:
                if process.poll() is not None:
                    raise RuntimeError(f"worker {process.args} exited with {process.returncode}")
            await asyncio.sleep(0.02)

    async def finish(self) -> None:
        """Let every conversation get the reply it awaits, then stop them."""
        self._stop.set()
        await asyncio.gather(*self._tasks)


def user_number(n: int) -> str:
    return f"whatsapp:+1555{n:07d}"


@dataclass(frozen=True)
class Mark:
    at: float
    busy_jiffies: int
    jiffies_by_process: dict[str, int]


@dataclass(frozen=True)
class Window:
    messages_per_second: float
    cpu_ms_per_message: float
    p50_ms: float
    p99_ms: float
    cpu_ms_by_process: dict[str, float]
    """The CPU per message of each kind of process (`jiffies_by_process`)."""

    def cpu_line(self) -> str:
        shares = ", ".join(f"{kind} {ms:.1f}" for kind, ms in self.cpu_ms_by_process.items())
        return f"{self.cpu_ms_per_message:.1f} ms of CPU a message ({shares})"


def mark(workers: list[subprocess.Popen[bytes]]) -> Mark:
    return Mark(time.monotonic(), busy_jiffies(), jiffies_by_process(workers))


def window(load: Load, start: Mark, end: Mark) -> Window:
    """What `load` did between two marks: replies that arrived in it, their latencies,
    and the whole machine's busy CPU time per reply."""
    latencies = sorted(latency for at, latency in load.samples if start.at <= at < end.at)
    if not latencies:
        raise RuntimeError("no reply arrived in the measured window")
    per_message = JIFFY_MS / len(latencies)
    return Window(
        messages_per_second=len(latencies) / (end.at - start.at),
        cpu_ms_per_message=(end.busy_jiffies - start.busy_jiffies) * per_message,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        cpu_ms_by_process={
            kind: (jiffies - start.jiffies_by_process.get(kind, 0)) * per_message
            for kind, jiffies in end.jiffies_by_process.items()
        },
    )


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def busy_jiffies() -> int:
    """Non-idle CPU time of the whole machine so far (all cores, /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return user + nice + system + irq + softirq + steal


def jiffies_by_process(workers: list[subprocess.Popen[bytes]]) -> dict[str, int]:
    """CPU time so far (user and system) of what shares the machine under a load: the
    `workers` with their descendants, Postgres's processes, Redis, and this process
    (the fakes and the inbox writer). A process that ended since the last reading
    leaves its time out."""
    kinds = dict.fromkeys(process_tree(workers), "workers") | {os.getpid(): "bench"}
    by_kind = dict.fromkeys(["workers", "postgres", "redis", "bench"], 0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended meanwhile
            continue
        command = text[text.index("(") + 1 : text.rindex(")")]
        kind = kinds.get(int(stat.parent.name)) or next(
            (name for name in ("postgres", "redis") if command.startswith(name)), None
        )
        if kind is not None:
            user, system = text[text.rindex(")") + 2 :].split()[11:13]
            by_kind[kind] += int(user) + int(system)
    return by_kind


def process_tree(processes: list[subprocess.Popen[bytes]]) -> Iterator[int]:
    """The ids of these processes and of all their descendants (prefork children)."""
    pending = [process.pid for process in processes]
    while pending:
        pid = pending.pop()
        yield pid
        for task in Path(f"/proc/{pid}/task").iterdir():
            pending += [int(child) for child in (task / "children").read_text().split()]


def rss_kib(processes: list[subprocess.Popen[bytes]]) -> int:
    """Resident memory of these processes and all their descendants."""
    total = 0
    for pid in process_tree(processes):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


@contextmanager
def running(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process (and its process group), terminated on exit."""
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, *argv],
            env={**base, "PYTHONPATH": str(ROOT), **env},
            cwd=log.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def forget_queues(*queues: str) -> None:
    """Drop what this run left on the broker once its workers are gone: tasks handed
    back at shutdown (retries waiting for their countdown) and the queues' bindings."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for queue in queues:
            keys = list(client.scan_iter(match=f"*{queue}*"))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def run(url: str, dsn: str, *, quick: bool) -> list[Row]:
    """Measure both designs (synchronous; it runs its own event loop). `dsn` is unused:
    every process here reaches the database by `url`."""
    del dsn
    replies = Replies()
    openai = ForgetfulOpenAI(delay_seconds=MODEL_DELAY_SECONDS)
    tap = ReplyTap(replies=replies)
    run_id = uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="wabot-bench-worker-"))
        twilio_url = stack.enter_context(serve(tap.app()))
        common = {
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": REDIS_URL,
            "OPENAI_API_KEY": "sk-test",
            "OPENAI_BASE_URL": f"{stack.enter_context(serve(openai.app()))}/v1",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": twilio_url,
            # The fake's media URLs redirect to its "CDN": the same server as localhost.
            "TWILIO_MEDIA_HOSTS": twilio_url.replace("http://127.0.0.1", "localhost"),
        }
        ours_env = {
            **common,
            "CELERY_QUEUE": f"wabot-bench-{run_id}",
            "WABOT_DATA_DIR": str(folder / "data"),
            "WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "COALESCE_WINDOW_SECONDS": "0",
            "SENDER_TURNS_PER_MINUTE": "100000",
        }
        naive_env = {**common, "CELERY_QUEUE": f"naive-bench-{run_id}"}
        media_env = {**ours_env, "CELERY_QUEUE": f"wabot-bench-media-{run_id}"}
        stack.callback(
            forget_queues,
            ours_env["CELERY_QUEUE"],
            naive_env["CELERY_QUEUE"],
            media_env["CELERY_QUEUE"],
        )
        ours = [
            stack.enter_context(
                running(
                    ["-m", "worker.cli", "worker", f"--hostname=ours{n}-{run_id}@%h"],
                    ours_env,
                    folder / f"ours-{n}.log",
                )
            )
            for n in range(PROCESSES)
        ]
        naive = stack.enter_context(
            running(
                [
                    "-m",
                    "celery",
                    "-A",
                    "bench.naive_worker",
                    "worker",
                    "--pool=prefork",
                    f"--concurrency={NAIVE_CONCURRENCY}",
                    f"--queues={naive_env['CELERY_QUEUE']}",
                    f"--hostname=naive-{run_id}@%h",
                    "--loglevel=INFO",
                ],
                naive_env,
                folder / "naive.log",
            )
        )
        for n, process in enumerate(ours):
            wait_for_log(folder / f"ours-{n}.log", "ready.", process=process, timeout=60)
        wait_for_log(folder / "naive.log", "ready.", process=naive, timeout=60)
        files = {
            "voice": Attached(tap.add_media(twilio_url, VOICE_NOTE, "audio/ogg"), "audio/ogg"),
            "photo": Attached(tap.add_media(twilio_url, PHOTO, "image/jpeg"), "image/jpeg"),
            "large": Attached(
                tap.add_media(twilio_url, large_voice_note(), "audio/ogg"), "audio/ogg"
            ),
        }
        try:
            rows = asyncio.run(
                _measure(
                    url,
                    ours_env,
                    naive_env["CELERY_QUEUE"],
                    ours,
                    naive,
                    openai=openai,
                    replies=replies,
                    quick=quick,
                )
            )
            # The 16 MB files' worker starts now: idle, it would only weigh on the rows above.
            media_worker = stack.enter_context(
                running(
                    ["-m", "worker.cli", "worker", f"--hostname=media-{run_id}@%h"],
                    media_env,
                    folder / "media.log",
                )
            )
            wait_for_log(folder / "media.log", "ready.", process=media_worker, timeout=60)
            rows += asyncio.run(
                _measure_media(
                    url,
                    ours_env,
                    media_env,
                    ours,
                    media_worker,
                    files,
                    openai=openai,
                    replies=replies,
                    quick=quick,
                )
            )
        except Exception as error:
            error.add_note(f"worker logs kept in {folder}")
            raise
    shutil.rmtree(folder)
    return rows


async def _measure(
    url: str,
    ours_env: dict[str, str],
    naive_queue: str,
    ours: list[subprocess.Popen[bytes]],
    naive: subprocess.Popen[bytes],
    *,
    openai: FakeOpenAI,
    replies: Replies,
    quick: bool,
) -> list[Row]:
    replies.attach(asyncio.get_running_loop())
    seconds = 5.0 if quick else 25.0
    early, late = (200, 1_000) if quick else (1_000, 10_000)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    inbox = InboxWriter(  # wired as webhooks.app wires the receiver's
        sessions,
        create_celery(Settings(_env_file=None, **ours_env)),
        statements=StatementConnections(url, size=1),
    )
    naive_celery = Celery("bench", broker=REDIS_URL)
    try:
        await builder_with_channel(sessions)
        await SQLAlchemySession("setup", engine=engine, create_tables=True).get_items()

        async def send_ours(user: str, text: str) -> None:
            """What the receiver does with a verified Twilio webhook."""
            message = parse_inbound(ImmutableMultiDict(twilio_form(text, sender=user)))
            [recorded] = await inbox.record([message])
            if not recorded.to_enqueue:
                raise RuntimeError("the message was not recorded as new and routed")

        async def send_naive(user: str, text: str) -> None:
            args = [user, BOT_NUMBER, text, user.removeprefix("whatsapp:")]
            await asyncio.to_thread(
                naive_celery.send_task, NAIVE_TASK, args=args, queue=naive_queue
            )

        load = Load(send_ours, replies, ours)
        load.start(range(FEW))
        await load.reach(2 * FEW)
        warm_rss = rss_kib(ours)
        load.start(range(FEW, CONVERSATIONS))
        await load.reach(2 * FEW + CONVERSATIONS)
        ours_slow, loaded_rss = await _steady(load, seconds)

        await _drained(ours_env["CELERY_QUEUE"])
        load = Load(send_ours, replies, ours)
        load.offer(range(80_000, 80_000 + OPEN_CONVERSATIONS), CARRIED_PER_SECOND)
        await load.reach(seconds=seconds / 5)
        ours_carried, _ = await _steady(load, seconds)

        load = Load(send_ours, replies, ours)
        load.offer(range(50_000, 50_000 + OPEN_CONVERSATIONS), OFFERED_PER_SECOND)
        await load.reach(seconds=seconds / 5)
        ours_open, _ = await _steady(load, seconds)
        print(f"worker, 500 ms model, closed loop: {ours_slow.cpu_line()}")  # noqa: T201
        print(  # noqa: T201
            f"worker, 500 ms model, {CARRIED_PER_SECOND:.0f} msg/s offered:"
            f" {ours_carried.cpu_line()}"
        )
        print(  # noqa: T201
            f"worker, 500 ms model, {OFFERED_PER_SECOND:.0f} msg/s offered: {ours_open.cpu_line()}"
        )
        if load.outrun:
            print(  # noqa: T201
                f"worker, {OFFERED_PER_SECOND:.0f} msg/s offered: {load.outrun} arrivals found"
                f" all {OPEN_CONVERSATIONS} users awaiting replies (the load outran the workers)"
            )

        naive_load = Load(send_naive, replies, [naive])
        naive_load.start(range(10_000, 10_000 + NAIVE_CONCURRENCY))
        await naive_load.reach(2 * NAIVE_CONCURRENCY)
        naive_slow, naive_rss = await _steady(naive_load, seconds)

        openai.delay_seconds = 0.0
        naive_load = Load(send_naive, replies, [naive])
        naive_load.start(range(20_000, 20_000 + 2 * NAIVE_CONCURRENCY))
        await naive_load.reach(4 * NAIVE_CONCURRENCY)
        naive_fast, _ = await _steady(naive_load, seconds)

        await _drained(ours_env["CELERY_QUEUE"])
        load = Load(send_ours, replies, ours)
        load.start(range(30_000, 30_000 + CONVERSATIONS))
        await load.reach(early)
        early_rss, start = rss_kib(ours), mark(ours)
        await load.reach(late)
        end, late_rss = mark(ours), rss_kib(ours)
        await load.finish()
        ours_fast = window(load, start, end)
        print(f"worker, 0 ms model, ours: {ours_fast.cpu_line()}")  # noqa: T201
        print(f"worker, 0 ms model, naive: {naive_fast.cpu_line()}")  # noqa: T201
    finally:
        replies.attach(None)
        await inbox.aclose()
        await engine.dispose()
    label = f"{late // 1000}k vs {early}" if quick else "10k vs 1k"
    return [
        Row(
            f"worker, 500 ms model, {CONVERSATIONS} convs: ours vs naive",
            "msg/s",
            ours_slow.messages_per_second,
            naive_slow.messages_per_second,
            ">= 35",
        ),
        Row(
            "worker, 500 ms model: messages/s against the 120 aimed at",
            "msg/s",
            ours_slow.messages_per_second,
            naive_slow.messages_per_second,
            "ours >= 120",
        ),
        Row(
            "worker, 0 ms model: ours vs naive",
            "msg/s",
            ours_fast.messages_per_second,
            naive_fast.messages_per_second,
            ">= 2.5",
        ),
        Row(
            "whole-machine CPU per message, 0 ms model: ours vs naive",
            "ms/msg",
            ours_fast.cpu_ms_per_message,
            naive_fast.cpu_ms_per_message,
            "<= 0.18",
        ),
        Row(
            f"worker, 500 ms model, {OFFERED_PER_SECOND:.0f} msg/s offered: messages/s answered",
            "msg/s",
            ours_open.messages_per_second,
            naive_slow.messages_per_second,
            f"ours >= {0.95 * OFFERED_PER_SECOND:.0f}",
        ),
        Row(
            f"worker p50 latency, 500 ms model, {OFFERED_PER_SECOND:.0f} msg/s offered: vs naive",
            "ms",
            ours_open.p50_ms,
            naive_slow.p50_ms,
            "<= 2",
        ),
        Row(
            f"worker p99 latency, 500 ms model, {OFFERED_PER_SECOND:.0f} msg/s offered: vs naive",
            "ms",
            ours_open.p99_ms,
            naive_slow.p99_ms,
            "<= 4",
        ),
        Row(
            f"worker p50 latency, 500 ms model, {CARRIED_PER_SECOND:.0f} msg/s offered: vs naive",
            "ms",
            ours_carried.p50_ms,
            naive_slow.p50_ms,
            "<= 1.5",
        ),
        Row(
            "RSS per conversation in flight: ours (added) vs naive",
            "KiB",
            (loaded_rss - warm_rss) / (CONVERSATIONS - FEW),
            naive_rss / NAIVE_CONCURRENCY,
            "<= 0.05",
        ),
        Row(
            f"worker RSS after {label} messages (ours, 0 ms model)",
            "MiB",
            late_rss / 1024,
            early_rss / 1024,
            "<= 1.1",
        ),
    ]


async def _drained(queue: str) -> None:
    """Wait until our workers have taken every task on `queue`, before a load is
    measured. A closed loop leaves thousands: all its messages but the first of each
    conversation were answered by the worker holding the conversation while their tasks
    waited for a free thread (each ends at once when it gets one); the next load's tasks
    would queue behind them, and its rate would carry the last one's leftovers."""
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        for _ in range(int(REPLY_TIMEOUT_SECONDS * 10)):
            if not await client.llen(queue):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"our workers left tasks on {queue} for {REPLY_TIMEOUT_SECONDS}s")
    finally:
        await client.aclose()


async def _steady(load: Load, seconds: float) -> tuple[Window, int]:
    """Measure a warmed-up load for `seconds`; also its workers' RSS at the end."""
    start = mark(load.workers)
    await load.reach(seconds=seconds)
    end = mark(load.workers)
    rss = rss_kib(load.workers)
    await load.finish()
    return window(load, start, end), rss


async def _measure_media(
    url: str,
    ours_env: dict[str, str],
    media_env: dict[str, str],
    ours: list[subprocess.Popen[bytes]],
    media_worker: subprocess.Popen[bytes],
    files: dict[str, Attached],
    *,
    openai: FakeOpenAI,
    replies: Replies,
    quick: bool,
) -> list[Row]:
    """The 500 ms load again, text only and then a tenth of it photos and a fifth voice
    notes, each on conversations of its own, one right after the other: the ratio is the
    files' cost alone, not the database's growth since the first rows. Then 16 MB voice
    notes through a worker process of their own (its RSS is its alone)."""
    replies.attach(asyncio.get_running_loop())
    openai.delay_seconds = MODEL_DELAY_SECONDS
    openai.transcription_delay_seconds = TRANSCRIPTION_DELAY_SECONDS
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    inboxes = {
        queue: InboxWriter(
            sessions,
            create_celery(Settings(_env_file=None, **env)),
            statements=StatementConnections(url, size=1),
        )
        for queue, env in (("ours", ours_env), ("media", media_env))
    }
    carried = mixed(files["voice"], files["photo"])

    def sender(
        inbox: InboxWriter, attached: Callable[[], Attached | None]
    ) -> Callable[[str, str], Awaitable[None]]:
        async def send(user: str, text: str) -> None:
            """What the receiver does with a verified Twilio webhook carrying a file."""
            form = twilio_form(text, sender=user)
            file = attached()
            if file is not None:
                form |= {
                    "NumMedia": "1",
                    "MediaUrl0": file.url,
                    "MediaContentType0": file.content_type,
                }
            [recorded] = await inbox.record([parse_inbound(ImmutableMultiDict(form))])
            if not recorded.to_enqueue:
                raise RuntimeError("the message was not recorded as new and routed")

        return send

    seconds = 5.0 if quick else 25.0
    try:
        await _drained(ours_env["CELERY_QUEUE"])
        load = Load(sender(inboxes["ours"], lambda: None), replies, ours)
        load.start(range(40_000, 40_000 + CONVERSATIONS))
        await load.reach(2 * CONVERSATIONS)
        text_only, _ = await _steady(load, seconds)

        await _drained(ours_env["CELERY_QUEUE"])
        load = Load(sender(inboxes["ours"], lambda: next(carried)), replies, ours)
        load.start(range(60_000, 60_000 + CONVERSATIONS))
        await load.reach(2 * CONVERSATIONS)
        with_media, _ = await _steady(load, seconds)

        openai.delay_seconds = openai.transcription_delay_seconds = 0.0
        send_large = sender(inboxes["media"], lambda: files["large"])

        async def converse(user: str, numbers: range) -> None:
            """One message after another, each sent once the previous one's reply came."""
            for number in numbers:
                arrived = replies.expect(user, f"file {number}")
                await send_large(user, f"file {number}")
                await asyncio.wait_for(arrived, REPLY_TIMEOUT_SECONDS)

        # Two conversations, so two files at a time; RSS taken with none in flight.
        users = ["whatsapp:+15550050000", "whatsapp:+15550050001"]
        each_early, each_late = LARGE_FILES_EARLY // 2, LARGE_FILES_LATE // 2
        await asyncio.gather(*(converse(user, range(each_early)) for user in users))
        early_rss = rss_kib([media_worker])
        await asyncio.gather(*(converse(user, range(each_early, each_late)) for user in users))
        late_rss = rss_kib([media_worker])
    finally:
        replies.attach(None)
        for inbox in inboxes.values():
            await inbox.aclose()
        await engine.dispose()
    return [
        Row(
            "worker, 500 ms model, 20% voice notes, 10% photos: vs text only",
            "msg/s",
            with_media.messages_per_second,
            text_only.messages_per_second,
            ">= 0.8",
        ),
        Row(
            f"worker RSS after {LARGE_FILES_LATE} vs {LARGE_FILES_EARLY} 16 MB voice notes",
            "MiB",
            late_rss / 1024,
            early_rss / 1024,
            "<= 1.2",
        ),
    ]
