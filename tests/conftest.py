"""Shared fixtures: the real Postgres and Redis, fake OpenAI and Twilio on loopback, our
real receiver (uvicorn) and a real Celery worker process.

Services: TEST_DATABASE_URL (default postgresql://127.0.0.1:5432/test; the suite owns
the wabot tables in it and recreates them; each pytest-xdist process has a database of
its own next to it, see tests/services.py), REDIS_URL (default redis://127.0.0.1:6379/0;
each run uses its own queue name) and RABBITMQ_URL (default
amqp://guest:guest@127.0.0.1:5672//; tests on it use queues of their own, deleted
afterwards). The receivers and workers the tests start reach
Postgres through a PgBouncer of the suite's own in transaction mode, as a fleet does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
import redis
from agents import set_tracing_disabled
from kombu import Connection
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from db import migrate
from db.core.settings import Settings
from db.engine import create_engine, create_sessionmaker
from db.models import Base
from tests.brokers import delete_rabbitmq_queue
from tests.factories import CREDENTIALS_KEY
from tests.fakes import meta
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import serve
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.pooler import pgbouncer, through
from tests.services import (
    GIVEN_LIBPQ_DSN,
    LIBPQ_DSN,
    RABBITMQ_URL,
    REDIS_URL,
    TEST_DATABASE_URL,
    XDIST_WORKER,
    ensure_database,
)
from tests.waiting import wait_for_log

ROOT = Path(__file__).resolve().parent.parent
RUN_QUEUE = f"wabot-test-{uuid.uuid4().hex[:8]}"
ADMIN_TOKEN = "test-admin-token-0123456789"
Wabot = Callable[..., subprocess.CompletedProcess[str]]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop at once, naming the service, when Postgres, Redis or RabbitMQ is not reachable."""
    problems = []
    try:
        if XDIST_WORKER:  # this process's own database, next to TEST_DATABASE_URL's
            ensure_database(GIVEN_LIBPQ_DSN, conninfo_to_dict(LIBPQ_DSN)["dbname"])
        psycopg.connect(LIBPQ_DSN, connect_timeout=3).close()
    except psycopg.Error as error:
        problems.append(
            f"PostgreSQL is unreachable at TEST_DATABASE_URL={TEST_DATABASE_URL} ({error}).\n"
            "  Start it: `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            " or `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test"
            " postgres:16`, or point TEST_DATABASE_URL at a server."
        )
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        problems.append(
            f"Redis is unreachable at REDIS_URL={REDIS_URL} ({error}).\n"
            "  Start it: `redis-server --daemonize yes --port 6379`"
            " or `docker run -d -p 6379:6379 redis:7`, or point REDIS_URL at a server."
        )
    try:
        with Connection(RABBITMQ_URL, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # kombu raises whatever its transport raised
        problems.append(
            f"RabbitMQ is unreachable at RABBITMQ_URL={RABBITMQ_URL} ({error}).\n"
            "  Start it: `service rabbitmq-server start` or `docker run -d -p 5672:5672"
            " rabbitmq:3`, or point RABBITMQ_URL at a server."
        )
    if problems:
        pytest.exit("\n".join(problems), returncode=3)


@pytest.fixture(scope="session", autouse=True)
def no_trace_export() -> None:
    """Tests never send SDK traces anywhere (the worker disables them the same way)."""
    set_tracing_disabled(True)


@pytest.fixture(scope="session")
def database_url() -> str:
    """The test database with a fresh wabot schema, migrated to head."""
    url = Settings(_env_file=None, DATABASE_URL=TEST_DATABASE_URL).resolved_database_url
    with psycopg.connect(LIBPQ_DSN, autocommit=True) as conn:
        for table in [*Base.metadata.sorted_tables, "alembic_version"]:
            conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def pooled_database_url(database_url: str) -> Iterator[str]:
    """The test database through the suite's PgBouncer (transaction pooling)."""
    with pgbouncer(LIBPQ_DSN) as port:
        yield through(port, database_url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite file: the embedded database of `make demo`."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'wabot.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture(scope="session")
def fake_twilio_server() -> Iterator[tuple[FakeTwilio, str]]:
    fake = FakeTwilio()
    with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture(scope="session")
def fake_graph_server() -> Iterator[tuple[FakeGraphAPI, str]]:
    fake = FakeGraphAPI()
    with serve(fake.app()) as url:
        yield fake, url


@pytest.fixture
def fake_graph(fake_graph_server: tuple[FakeGraphAPI, str]) -> FakeGraphAPI:
    fake_graph_server[0].reset()
    return fake_graph_server[0]


@pytest.fixture
def fake_openai(fake_openai_server: tuple[FakeOpenAI, str]) -> FakeOpenAI:
    fake_openai_server[0].reset()
    return fake_openai_server[0]


@pytest.fixture
def fake_twilio(fake_twilio_server: tuple[FakeTwilio, str]) -> FakeTwilio:
    fake_twilio_server[0].reset()
    return fake_twilio_server[0]


@pytest.fixture(scope="session")
def service_env(
    pooled_database_url: str,
    fake_openai_server: tuple[FakeOpenAI, str],
    fake_twilio_server: tuple[FakeTwilio, str],
    fake_graph_server: tuple[FakeGraphAPI, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """The environment our processes run with in tests: real Postgres (through
    PgBouncer) and Redis, fake OpenAI, Twilio and Meta on loopback."""
    return {
        "WABOT_DATA_DIR": str(tmp_path_factory.mktemp("wabot-data")),
        "DATABASE_URL": pooled_database_url,
        "DATABASE_POOLER": "transaction",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_QUEUE": RUN_QUEUE,
        "CELERY_VISIBILITY_TIMEOUT": "300",
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": f"{fake_openai_server[1]}/v1",
        "OPENAI_MAX_RETRIES": "0",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE_URL": fake_twilio_server[1],
        # The fake's CDN: the same server under another host name, as Twilio's is another.
        "TWILIO_MEDIA_HOSTS": fake_twilio_server[1].replace("http://127.0.0.1", "localhost"),
        "META_APP_SECRET": meta.APP_SECRET,
        "META_VERIFY_TOKEN": meta.VERIFY_TOKEN,
        "META_ACCESS_TOKEN": meta.ACCESS_TOKEN,
        "META_API_BASE_URL": fake_graph_server[1],
        "META_API_VERSION": meta.API_VERSION,
        "CREDENTIALS_KEY": CREDENTIALS_KEY,
        "RUN_TIMEOUT_SECONDS": "20",
        "CONVERSATION_LEASE_SECONDS": "30",
        "RETRY_BACKOFF_SECONDS": "0.2",
        "SWEEP_INTERVAL_SECONDS": "3600",
        "COALESCE_WINDOW_SECONDS": "0",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "SESSION_SECRET": "test-session-secret-0123456789",
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }


@pytest.fixture(scope="session")
def settings(service_env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **service_env)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """A sessionmaker on an emptied database (each test starts from no rows). DELETE, not
    TRUNCATE: on a test's few rows it takes milliseconds, where TRUNCATE makes new files
    for every table and index (0.4 s a test, a minute or more of the suite)."""
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(table.delete())
    return create_sessionmaker(engine)


@pytest.fixture(params=["postgres", "sqlite"])
async def sessions(
    request: pytest.FixtureRequest,
    db_sessions: async_sessionmaker[AsyncSession],
    sqlite_url: str,
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Postgres (emptied), or the embedded SQLite file every test of the process shares
    (each test makes its own builders and reads only their rows)."""
    if request.param == "postgres":
        yield db_sessions
        return
    engine = create_engine(sqlite_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def receiver(settings: Settings) -> Iterator[str]:
    """Our real ASGI apps (webhooks and dashboard, as `wabot serve` combines them) served
    by uvicorn on loopback; yields its base URL. It enqueues to a queue no worker reads,
    so receiver tests own the rows they create."""
    from webhooks.combined_app import create_combined_app

    idle = settings.model_copy(update={"celery_queue": f"wabot-idle-{uuid.uuid4().hex[:8]}"})
    with serve(create_combined_app(idle)) as url:
        yield url


@pytest.fixture(scope="session")
def live_receiver(settings: Settings, celery_worker: Path) -> Iterator[str]:
    """Our real ASGI app feeding the session's real Celery worker."""
    from webhooks.combined_app import create_combined_app

    with serve(create_combined_app(settings)) as url:
        yield url


def start_worker(
    env: dict[str, str], log: Path, *, concurrency: int = 8
) -> subprocess.Popen[bytes]:
    """A real `wabot worker` process (Celery, thread pool, one event loop)."""
    clean_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **env}
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "worker", f"--concurrency={concurrency}"],
            env={**clean_env, "PYTHONPATH": str(ROOT)},
            cwd=log.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for_log(log, "ready.", process=process)
    return process


@pytest.fixture(scope="session")
def celery_worker(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """One worker for the pipeline tests; yields its log file."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = start_worker(service_env, log)
    yield log
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def make_receiver(service_env: dict[str, str]) -> Iterator[Callable[..., str]]:
    """Start extra receivers with settings overrides (own queue by default); yields a
    function returning each one's base URL."""
    stack = ExitStack()

    def start(**overrides: str) -> str:
        from webhooks.combined_app import create_combined_app

        env = {**service_env, "CELERY_QUEUE": f"wabot-test-{uuid.uuid4().hex[:8]}", **overrides}
        return stack.enter_context(serve(create_combined_app(Settings(_env_file=None, **env))))

    with stack:
        yield start


@pytest.fixture
def private_queue(
    service_env: dict[str, str], make_receiver: Callable[..., str]
) -> Iterator[Callable[..., tuple[dict[str, str], str]]]:
    """An environment for workers the test starts itself, and a receiver feeding them, on
    a queue of their own; `overrides` apply to both (timeouts, broker). A queue on the
    shared RabbitMQ is deleted afterwards."""
    queues: list[dict[str, str]] = []

    def make(**overrides: str) -> tuple[dict[str, str], str]:
        env = {**service_env, "CELERY_QUEUE": f"wabot-test-{uuid.uuid4().hex[:8]}", **overrides}
        receiver = make_receiver(
            CELERY_QUEUE=env["CELERY_QUEUE"], CELERY_BROKER_URL=env["CELERY_BROKER_URL"]
        )
        queues.append(env)
        return env, receiver

    yield make
    for env in queues:
        if env["CELERY_BROKER_URL"] == RABBITMQ_URL:
            delete_rabbitmq_queue(RABBITMQ_URL, env["CELERY_QUEUE"])


@pytest.fixture
def wabot(pooled_database_url: str, db_sessions: async_sessionmaker[AsyncSession]) -> Wabot:
    """Run `wabot ARGS…` as a user runs it (a real process, through PgBouncer) against
    the emptied test database; `input` is typed at its prompts, `env` adds variables (a
    broker, a key). A deprecated call fails it, as it fails the tests in this process."""
    database = {"DATABASE_URL": pooled_database_url, "DATABASE_POOLER": "transaction"}

    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-W", "error::DeprecationWarning", "-m", "worker.cli", *args],
            env={"PATH": os.environ["PATH"], **database, **(env or {})},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT / "tests" / "fixtures",
            input=input,
        )

    return run
