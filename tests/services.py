"""Where the suite finds its real services (override with TEST_DATABASE_URL, REDIS_URL,
RABBITMQ_URL).

Under pytest-xdist (`make test` runs two processes) each process has its own database,
`<database>_gw0`, `<database>_gw1`…, made on first use, and its own Redis database, the
given number plus its own (REDIS_URL …/7: gw0 uses 7, gw1 uses 8); queues are already
each run's own, on Redis and on RabbitMQ."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import psycopg
from psycopg import sql
from sqlalchemy import make_url

XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
"""`gw0`, `gw1`… in a pytest-xdist process, empty in a plain pytest run."""

GIVEN_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
GIVEN_LIBPQ_DSN = GIVEN_DATABASE_URL.replace("+psycopg", "")
"""The database named in TEST_DATABASE_URL: where this process's own is created."""


def _own_database(url: str) -> str:
    if not XDIST_WORKER:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{XDIST_WORKER}").render_as_string(
        hide_password=False
    )


def _own_redis_database(url: str) -> str:
    if not XDIST_WORKER:
        return url
    parts = urlsplit(url)
    number = int(parts.path.strip("/") or 0) + int(XDIST_WORKER.removeprefix("gw"))
    return parts._replace(path=f"/{number}").geturl()


TEST_DATABASE_URL = _own_database(GIVEN_DATABASE_URL)
LIBPQ_DSN = TEST_DATABASE_URL.replace("+psycopg", "")
REDIS_URL = _own_redis_database(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def ensure_database(server_dsn: str, name: str) -> None:
    """Create the database `name` on the server of `server_dsn`, unless it exists."""
    with psycopg.connect(server_dsn, autocommit=True, connect_timeout=3) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def terminate_connections(application_name: str) -> int:
    """Drop every database connection opened under `application_name`, as a database
    restart or an operator's `pg_terminate_backend` does; how many there were."""
    with psycopg.connect(LIBPQ_DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (application_name,),
        ).fetchall()
    return len(rows)
