"""`wabot retry`: hand failed turns back to the workers from a terminal, as the
dashboard's retry action does (each turn is reopened and answers its messages again,
their input stored once)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import click
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AgentSessionRow, Turn, TurnStatus
from db.takeover import FailedTurn, retry_turn, retryable_turns
from worker.cli.support import emit, existing_builder, in_transaction, json_option

PAUSED = "is paused (an operator took over); resume it in the dashboard to retry"


@dataclass(frozen=True)
class Reopened:
    turns: list[uuid.UUID]
    """The failed turns handed back."""
    messages: dict[uuid.UUID, list[int]]
    """Per conversation, the ids of its messages handed back, in arrival order."""
    paused: list[uuid.UUID]
    """Failed turns `--all` left alone because their conversation is paused."""


@click.command()
@click.argument("session_ids", nargs=-1, type=click.UUID, metavar="[SESSION_ID]...")
@click.option(
    "--turn", "turn_ids", multiple=True, type=click.UUID, help="A failed turn (repeatable)."
)
@click.option("--all", "everything", is_flag=True, help="Every failed turn.")
@click.option("--builder", "builder_id", type=click.UUID, help="With --all: only this builder's.")
@json_option
def retry(
    session_ids: tuple[uuid.UUID, ...],
    turn_ids: tuple[uuid.UUID, ...],
    everything: bool,
    builder_id: uuid.UUID | None,
    as_json: bool,
) -> None:
    """Retry failed turns: SESSION_ID… (their failed turns), --turn TURN_ID, or --all
    [--builder ID]. Each goes back to the workers as the same turn, which answers its
    messages again; failed messages of no turn (their channel was removed) are not
    retried."""
    if builder_id is not None and not everything:
        raise click.UsageError("--builder goes with --all")
    if sum(map(bool, (session_ids, turn_ids, everything))) != 1:
        raise click.UsageError("give SESSION_ID..., --turn TURN_ID or --all (one of them)")

    async def reopen(db: AsyncSession) -> Reopened:
        if builder_id is not None:
            await existing_builder(builder_id, db=db)
        found = await retryable_turns(
            session_ids=session_ids, turn_ids=turn_ids, builder_id=builder_id, db=db
        )
        if not everything:
            await _check_asked_for(session_ids, turn_ids, found, db=db)
        paused = [turn.id for turn in found if turn.paused]
        retried: list[uuid.UUID] = []
        messages: dict[uuid.UUID, list[int]] = {}
        for turn in found:
            handed_back = [] if turn.paused else await retry_turn(turn.id, db=db)
            if handed_back:
                retried.append(turn.id)
                messages.setdefault(turn.session_id, []).extend(handed_back)
        if not retried:
            whose = f" of builder {builder_id}" if builder_id else ""
            if paused:
                raise click.ClickException(
                    f"nothing to retry: the {len(paused)} failed turn(s){whose} are in paused"
                    " conversations; resume them in the dashboard first"
                )
            raise click.ClickException(f"nothing to retry: no failed turn{whose}")
        return Reopened(retried, messages, paused)

    reopened = in_transaction(reopen)
    enqueued = asyncio.run(_enqueue(reopened))
    count = sum(len(ids) for ids in reopened.messages.values())
    lines = [
        f"retrying {len(reopened.turns)} failed turn(s): {count} message(s) handed back"
        f" in {len(reopened.messages)} conversation(s)"
    ]
    if reopened.paused:
        lines.append(
            f"left {len(reopened.paused)} failed turn(s) alone: their conversation {PAUSED}"
        )
    if not enqueued:
        lines.append(
            "the broker is unreachable: the messages wait as pending, and a worker's sweeper"
            " hands them over once they have waited SWEEP_STALE_SECONDS"
        )
    data = {
        "turns": [str(turn_id) for turn_id in reopened.turns],
        "messages": count,
        "conversations": [str(session_id) for session_id in reopened.messages],
        "paused_turns": [str(turn_id) for turn_id in reopened.paused],
        "enqueued": enqueued,
    }
    emit(as_json, data, "\n".join(lines))


async def _check_asked_for(
    session_ids: tuple[uuid.UUID, ...],
    turn_ids: tuple[uuid.UUID, ...],
    found: list[FailedTurn],
    *,
    db: AsyncSession,
) -> None:
    """Every conversation and turn named has something to retry, or the command says
    why not: unknown, not failed, nothing to answer, or paused."""
    for session_id in session_ids:
        if await db.get(AgentSessionRow, session_id) is None:
            raise click.ClickException(f"no conversation with id {session_id}")
        if not any(turn.session_id == session_id for turn in found):
            raise click.ClickException(
                f"nothing to retry: conversation {session_id} has no failed turn to retry"
            )
    for turn_id in turn_ids:
        turn = await db.get(Turn, turn_id)
        if turn is None:
            raise click.ClickException(f"no turn with id {turn_id}")
        if not any(each.id == turn_id for each in found):
            why = _NOT_RETRYABLE.get(turn.status, "it has no message a channel still routes")
            raise click.ClickException(f"turn {turn_id} cannot be retried: {why}")
    for failed in found:
        if failed.paused:
            raise click.ClickException(f"conversation {failed.session_id} {PAUSED}")


_NOT_RETRYABLE: dict[str, str] = {
    TurnStatus.RUNNING: "it is running",
    TurnStatus.REPLIED: "it replied",
    TurnStatus.RETRIED: "it was retried already",
}


async def _enqueue(reopened: Reopened) -> bool:
    """One task per conversation: the worker answers its retried turns one after the
    other. False when the broker is unreachable (the messages stay pending for the
    sweeper)."""
    from worker.celery_app import app, enqueue_inbound  # builds the Celery app: only when needed

    return await enqueue_inbound(app, [ids[-1] for ids in reopened.messages.values()])
