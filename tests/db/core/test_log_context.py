"""Correlation ids stay with the work they belong to, however it interleaves."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from db.core.log_context import FIELDS, CorrelationFilter, bind, log_context


class Collected(logging.Handler):
    """The records as our handler's filter leaves them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(CorrelationFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def fields(self) -> list[tuple[str, dict[str, object]]]:
        return [
            (r.getMessage(), {name: r.__dict__[name] for name in FIELDS if name in r.__dict__})
            for r in self.records
        ]


@pytest.fixture
def collected() -> Iterator[tuple[logging.Logger, Collected]]:
    logger = logging.getLogger("tests.log_context")
    handler = Collected()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, handler
    logger.removeHandler(handler)


async def test_conversations_on_one_loop_keep_their_own_ids(
    collected: tuple[logging.Logger, Collected],
) -> None:
    logger, handler = collected

    async def conversation(inbound_id: int, pause: float) -> None:
        """Like a worker task: the inbound, then its session, then two turns in order."""
        with log_context(inbound_id=inbound_id):
            await asyncio.sleep(pause)
            bind(session_id=f"session-{inbound_id}")
            for turn in (1, 2):
                with log_context(turn_id=f"turn-{inbound_id}.{turn}"):
                    await asyncio.sleep(pause)
                    logger.info("%s: turn %s", inbound_id, turn)
            logger.info("%s: done", inbound_id)

    await asyncio.gather(conversation(1, 0.02), conversation(2, 0.01))
    logger.info("after both")

    assert sorted(handler.fields()) == [
        ("1: done", {"inbound_id": 1, "session_id": "session-1"}),
        ("1: turn 1", {"inbound_id": 1, "session_id": "session-1", "turn_id": "turn-1.1"}),
        ("1: turn 2", {"inbound_id": 1, "session_id": "session-1", "turn_id": "turn-1.2"}),
        ("2: done", {"inbound_id": 2, "session_id": "session-2"}),
        ("2: turn 1", {"inbound_id": 2, "session_id": "session-2", "turn_id": "turn-2.1"}),
        ("2: turn 2", {"inbound_id": 2, "session_id": "session-2", "turn_id": "turn-2.2"}),
        ("after both", {}),
    ]
    # They really interleaved: the second conversation's turn came between the first's.
    order = [message for message, _ in handler.fields()]
    assert order.index("2: turn 1") < order.index("1: turn 1")


async def test_a_task_started_in_a_block_carries_its_ids_and_never_leaks_them_back(
    collected: tuple[logging.Logger, Collected],
) -> None:
    logger, handler = collected

    async def typing_indicator() -> None:
        await asyncio.sleep(0)
        bind(outbound_id="set-in-the-child")
        logger.info("child")

    with log_context(turn_id="t1"):
        await asyncio.create_task(typing_indicator())
        logger.info("parent")

    assert handler.fields() == [
        ("child", {"turn_id": "t1", "outbound_id": "set-in-the-child"}),
        ("parent", {"turn_id": "t1"}),
    ]


def test_a_misspelt_field_is_named() -> None:
    with pytest.raises(TypeError, match="unknown log field.*: sesion_id"):
        log_context(sesion_id="s")
