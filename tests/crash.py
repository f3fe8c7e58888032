"""A worker killed between the provider taking its reply and recording so, and the worker
that resumes its turn: shared by the crash tests of plain replies and of offers."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import start_worker
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.twilio import FakeTwilio
from tests.queries import turns
from tests.waiting import at_least, eventually


async def killed_after_the_provider_took(
    doomed: subprocess.Popen[bytes],
    fake: FakeTwilio | FakeGraphAPI,
    *,
    env: dict[str, str],
    tmp_path: Path,
    db_sessions: async_sessionmaker[AsyncSession],
) -> dict[str, Any]:
    """Once `fake` (holding its answers) took a reply from `doomed`, kill `doomed` and let
    a survivor resume the turn until it is replied; returns what the provider took."""
    [taken] = await at_least(fake.messages, 1, within=30, what="replies the provider took")
    os.killpg(doomed.pid, signal.SIGKILL)
    doomed.wait(timeout=10)
    fake.hold_after_accept_seconds = 0
    await at_least(fake.held.unheard, 1, what="replies taken that their worker never heard of")
    survivor = start_worker(env, tmp_path / "survivor.log", concurrency=2)
    try:

        async def replied() -> bool:
            return [turn.status for turn in await turns(db_sessions)] == ["replied"]

        await eventually(replied, within=45, what="the resumed turn to finish")
    finally:
        survivor.terminate()
        survivor.wait(timeout=30)
    return taken
