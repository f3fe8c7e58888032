"""The sweeper: every worker process periodically re-enqueues inbox messages that no
task will answer (published while the broker was down, or lost with a dead worker).

Single-flight across workers without a coordinator: a sweep claims rows with
`FOR UPDATE SKIP LOCKED` and stamps them, so each stranded message is re-enqueued once
per period however many workers sweep. Re-enqueueing is safe because turns are
idempotent. Each sweep also deletes media kept longer than `MEDIA_RETENTION_DAYS`,
rolls up the dashboard's activity settled since the last (off the path that stores
messages; the watermark's row lock makes each row rolled up once), and forgets
conversations noted as maybe needing attention that no longer do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from db.activity import roll_up_activity
from db.attention import forget_recovered
from db.inbox import claim_stranded
from db.media import delete_media_before
from worker.process.runtime import Runtime

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500

Publish = Callable[[Sequence[int]], Awaitable[object]]


async def sweep_once(runtime: Runtime, publish: Publish) -> int:
    """Re-enqueue what is stranded now; returns how many messages were re-enqueued."""
    older_than = datetime.now(UTC) - timedelta(seconds=runtime.settings.sweep_stale_seconds)
    async with runtime.sessionmaker.begin() as db:
        stranded = await claim_stranded(older_than=older_than, limit=SWEEP_BATCH, db=db)
    if stranded:
        await publish(stranded)
        logger.info("sweeper re-enqueued %d stranded message(s)", len(stranded))
    return len(stranded)


async def forget_old_media(runtime: Runtime) -> int:
    """Delete media kept longer than `MEDIA_RETENTION_DAYS` (0: kept until their
    conversation is deleted), a batch per sweep; returns how many went."""
    days = runtime.settings.media_retention_days
    if not days:
        return 0
    cutoff = datetime.now(UTC) - timedelta(days=days)
    async with runtime.sessionmaker.begin() as db:
        deleted = await delete_media_before(cutoff, limit=SWEEP_BATCH, db=db)
    if deleted:
        logger.info("sweeper deleted %d media file(s) past their retention", deleted)
    return deleted


async def roll_up_settled_activity(runtime: Runtime) -> None:
    """Roll up the dashboard's activity as far as it is settled (`db.activity`)."""
    async with runtime.sessionmaker.begin() as db:
        await roll_up_activity(db=db, now=datetime.now(UTC))


async def forget_recovered_conversations(runtime: Runtime) -> int:
    """Forget a batch of the conversations noted as maybe needing attention whose turn or
    reply has recovered since (`db.attention.forget_recovered`): the "needs attention"
    list re-checks them all, so it stays quick while they stay few."""
    async with runtime.sessionmaker.begin() as db:
        forgotten = await forget_recovered(limit=SWEEP_BATCH, db=db)
    if forgotten:
        logger.info("sweeper forgot %d recovered conversation(s)", forgotten)
    return forgotten


async def sweep_forever(runtime: Runtime, publish: Publish) -> None:
    """Sweep now and every `SWEEP_INTERVAL_SECONDS`; a failed sweep (database or broker
    down) is logged and tried again next period, and so is a failed roll-up (on its own:
    a broker down does not hold the dashboard's activity back)."""
    while True:
        try:
            await sweep_once(runtime, publish)
            await forget_old_media(runtime)
            await forget_recovered_conversations(runtime)
        except Exception as error:  # the next period retries; the worker must keep sweeping
            logger.warning("sweep failed: %s: %s", type(error).__name__, error)
        try:
            await roll_up_settled_activity(runtime)
        except Exception as error:  # as above: the pages count what is not rolled up live
            logger.warning("activity roll-up failed: %s: %s", type(error).__name__, error)
        await asyncio.sleep(runtime.settings.sweep_interval_seconds)
