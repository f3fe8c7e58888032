"""`make bench`: every row measured side by side with its baseline in one run.

BENCH_QUICK=1 runs a short version of every row. Results also go to .bench/results.json.
The bench owns the databases `wabot_bench*` on the TEST_DATABASE_URL server
(`wabot_bench_scale`: the dashboard's rows, up to 10 million items).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from bench import dashboard_scale, receiver_throughput, session_turns, worker_throughput
from bench.report import machine, table, write
from db import migrate
from db.core.settings import Settings
from db.models import Base
from tests.services import LIBPQ_DSN

BENCH_DATABASE = "wabot_bench"


def bench_database(name: str = BENCH_DATABASE) -> tuple[str, str]:
    """(SQLAlchemy URL, libpq DSN) of a freshly migrated database `name` on the test server."""
    with psycopg.connect(LIBPQ_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = psycopg.conninfo.make_conninfo(LIBPQ_DSN, dbname=name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table_name in [
            *Base.metadata.sorted_tables,
            "alembic_version",
            "agent_messages",
            "agent_sessions",
            "bench_floor",
        ]:
            conn.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(str(table_name)))
            )
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    url = (
        f"postgresql+psycopg://{params.get('user', '')}@{params.get('host', '127.0.0.1')}"
        f":{params.get('port', 5432)}/{name}"
    )
    url = Settings(_env_file=None, DATABASE_URL=url).resolved_database_url
    migrate.upgrade(url)
    return url, dsn


def main() -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    url, dsn = bench_database()
    print(f"wabot bench ({'quick' if quick else 'full'}) on {machine()}")  # noqa: T201
    rows = asyncio.run(session_turns.run(url, dsn, quick=quick))
    rows += receiver_throughput.run(url, dsn, quick=quick)
    rows += worker_throughput.run(*bench_database(worker_throughput.DATABASE), quick=quick)
    rows += dashboard_scale.run(*bench_database(dashboard_scale.DATABASE), quick=quick)
    print(table(rows))  # noqa: T201
    print(f"results: {write(rows, Path('.bench'))}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
