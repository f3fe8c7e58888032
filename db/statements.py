"""A few persistent autocommit Postgres connections for single statements.

The agent runner reads and writes its session on every turn. Each of those is one
statement, so it needs no transaction and no pool checkout: statements go round-robin
to a small set of open psycopg connections and queue on a connection's own lock when
it is busy. A connection that broke (database restart, terminated backend) fails its
statement once, as SQLAlchemy's `OperationalError` like everything else, and is
replaced on its next turn; the others idle then are replaced too, so a retry does not
meet one that broke with it.
"""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from db.database_errors import hide_data
from db.engine import Pooler, psycopg_options

CONNECT_TIMEOUT_SECONDS = 5


class StatementConnections:
    def __init__(self, database_url: str, *, size: int, pooler: Pooler = "none") -> None:
        self._conninfo = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._options = psycopg_options(pooler)
        self._connections: list[psycopg.AsyncConnection[Any] | None] = [None] * size
        self._turn = itertools.cycle(range(size))

    async def fetch(self, statement: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction and return its rows (none for a
        statement that returns none)."""
        slot = next(self._turn)
        try:
            connection = self._connections[slot]
            if connection is None or connection.closed:
                connection = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=CONNECT_TIMEOUT_SECONDS,
                    **self._options,
                )
                self._connections[slot] = connection
            cursor = await connection.execute(statement, params)
            return await cursor.fetchall() if cursor.description else []
        except psycopg.Error as error:
            hide_data(error)  # Postgres quotes the values it refused; nobody may log them
            if not isinstance(error, psycopg.OperationalError):
                raise
            # A broken connection is closed, and replaced on its slot's next turn; one that
            # only refused the statement (a program limit, a timeout) stays.
            failed = self._connections[slot]
            if failed is None or failed.closed:
                await self._close_idle()
            raise OperationalError(statement, params, error, hide_parameters=True) from error

    async def _close_idle(self) -> None:
        """One connection broke (a database restart, a failover): the others most likely
        broke with it and would each fail their next statement, so a caller's retry could
        meet another broken one. Those running no statement now are closed, to connect
        again on their next turn (as SQLAlchemy's pool discards itself)."""
        for slot, connection in enumerate(self._connections):
            if connection is not None and not connection.lock.locked():
                self._connections[slot] = None
                await connection.close()

    async def aclose(self) -> None:
        for connection in self._connections:
            if connection is not None:
                await connection.close()
        self._connections = [None] * len(self._connections)
