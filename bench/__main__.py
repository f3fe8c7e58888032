"""`make bench`: every row measured side by side with its baseline in one run.

BENCH_QUICK=1 runs a short version of every row. Results also go to .bench/results.json.
Each row's ratio is compared with the committed results of the same mode
(`bench/baseline.json`): the run fails when one moved the wrong way by more than the
noise (`bench.baseline.TOLERANCE` of the mode). `--save-baseline` (`make bench SAVE=1`) makes this
run the committed results instead, to commit deliberately with the change that moved them.
The bench owns the databases `wabot_bench*` on the TEST_DATABASE_URL server
(`wabot_bench_scale`: the dashboard's rows, up to 10 million items).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from bench import baseline, dashboard_scale, receiver_throughput, session_turns, worker_throughput
from bench.report import machine, table, write
from db import migrate
from db.core.settings import Settings
from db.models import Base
from tests.services import LIBPQ_DSN, ensure_database

BENCH_DATABASE = "wabot_bench"


def bench_database(name: str = BENCH_DATABASE) -> tuple[str, str]:
    """(SQLAlchemy URL, libpq DSN) of a freshly migrated database `name` on the test server."""
    ensure_database(LIBPQ_DSN, name)
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
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--save-baseline",
        action="store_true",
        help="write this run to bench/baseline.json as the results later runs compare with",
    )
    arguments = parser.parse_args()
    quick = os.environ.get("BENCH_QUICK") == "1"
    mode = "quick" if quick else "full"
    # Each bench database is migrated afresh: two dozen INFO lines each, above the table.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    url, dsn = bench_database()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"wabot bench ({mode}), {started}, on {machine()}")  # noqa: T201
    rows = asyncio.run(session_turns.run(url, dsn, quick=quick))
    rows += receiver_throughput.run(url, dsn, quick=quick)
    rows += worker_throughput.run(*bench_database(worker_throughput.DATABASE), quick=quick)
    rows += dashboard_scale.run(*bench_database(dashboard_scale.DATABASE), quick=quick)
    committed = baseline.load(mode)
    changes = baseline.changes(rows, mode, committed)
    print(table(rows, [change.label() for change in changes]))  # noqa: T201
    print(f"results: {write(rows, Path('.bench'))}")  # noqa: T201
    print(f"targets met: {sum(row.met for row in rows)} of {len(rows)}")  # noqa: T201
    if arguments.save_baseline:
        print(f"saved as the committed {mode} results: {baseline.save(rows, mode)}")  # noqa: T201
        return 0
    if committed is None:
        print(f"no committed {mode} results to compare with: make bench SAVE=1")  # noqa: T201
        return 0
    regressed = [change.row.row for change in changes if change.regressed]
    tolerance = baseline.TOLERANCE[mode]
    print(  # noqa: T201
        f"against the committed {committed.describe()}: "
        + (
            f"{len(regressed)} worse by more than {tolerance:.0%}: " + "; ".join(regressed)
            if regressed
            else f"no row worse by more than {tolerance:.0%}"
        )
    )
    return 1 if regressed else 0


if __name__ == "__main__":
    sys.exit(main())
