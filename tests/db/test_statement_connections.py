"""The persistent statement connections (`db.statements`) after the database dropped
them all (a restart, a failover): the statement that finds out fails once, and the next
one runs, whichever connection its turn falls on."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from db.statements import StatementConnections
from tests.services import terminate_connections

APPLICATION = "wabot-test-statement-connections"


async def test_after_the_database_dropped_every_connection_only_one_statement_fails(
    database_url: str,
) -> None:
    separator = "&" if "?" in database_url else "?"
    statements = StatementConnections(
        f"{database_url}{separator}application_name={APPLICATION}", size=4
    )
    try:
        for _ in range(4):  # each connection opened
            assert await statements.fetch("SELECT 1", {}) == [(1,)]
        assert terminate_connections(APPLICATION) == 4
        with pytest.raises(OperationalError):
            await statements.fetch("SELECT 2", {})
        assert await statements.fetch("SELECT 3", {}) == [(3,)]
    finally:
        await statements.aclose()
