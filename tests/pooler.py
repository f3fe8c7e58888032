"""A PgBouncer of the suite's own, in transaction mode, in front of the test database's
server: the receivers and workers the tests start reach Postgres through it, as a
fleet's do (see README, "Run a worker fleet")."""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import make_url

from tests.fakes.server import free_port
from tests.waiting import wait_until_ready

UNPRIVILEGED_USER = "nobody"
"""PgBouncer refuses to run as root; started by root it switches to this user."""


def pgbouncer_executable() -> str:
    """Debian's `pgbouncer`, or the suite's one-line failure naming the fix."""
    executable = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
    if executable is None:
        raise AssertionError(
            "the suite runs its receivers and workers through PgBouncer, which is missing: "
            "apt-get install pgbouncer (`make test` does it when run as root)"
        )
    return executable


@contextmanager
def pgbouncer(libpq_dsn: str) -> Iterator[int]:
    """Run PgBouncer (transaction pooling, any database, the DSN's user trusted and its
    password used towards the server) on a spare loopback port; yields the port."""
    executable = pgbouncer_executable()
    server = conninfo_to_dict(libpq_dsn)
    user = str(server.get("user") or getpass.getuser())
    password = str(server.get("password") or "")
    target = " ".join(f"{key}={server[key]}" for key in ("host", "port") if server.get(key))
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wabot-pgbouncer-") as temporary:
        folder = Path(temporary)
        (folder / "users.txt").write_text(f'"{user}" "{password}"\n')
        (folder / "pgbouncer.ini").write_text(
            f"[databases]\n* = {target}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {folder / 'users.txt'}\n"
            "pool_mode = transaction\ndefault_pool_size = 20\nmax_client_conn = 2000\n"
        )
        command = [executable, str(folder / "pgbouncer.ini")]
        if os.geteuid() == 0:
            nobody = pwd.getpwnam(UNPRIVILEGED_USER)
            for path in (folder, *folder.iterdir()):
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            command[1:1] = ["--user", UNPRIVILEGED_USER]
        log = folder / "pgbouncer.log"
        with log.open("ab") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        try:
            dsn = f"host=127.0.0.1 port={port} dbname={server.get('dbname', user)} user={user}"
            wait_until_ready(
                lambda: _answers(dsn), process=process, log=log, what="PgBouncer", timeout=15
            )
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=1) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def through(port: int, database_url: str) -> str:
    """`database_url` with PgBouncer's address in place of the server's."""
    return (
        make_url(database_url)
        .set(host="127.0.0.1", port=port)
        .render_as_string(hide_password=False)
    )
