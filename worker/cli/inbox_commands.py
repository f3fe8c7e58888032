"""`wabot inbox` and `wabot conversation show`: what operators look at in a terminal,
read the way the dashboard reads it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click
from sqlalchemy.ext.asyncio import AsyncSession

from db.backlog import AGES, Backlog, inbox_backlog
from db.core.clock import as_utc
from db.core.logging_setup import mask_numbers
from db.dashboard_queries import MAX_PAGE, SessionSummary, items_page, session_with_status
from db.models import SessionItem
from db.recent_conversations import RecentConversation, recent_conversations
from db.transcript import one_line, transcript_line
from worker.cli.support import emit, existing_builder, in_transaction, json_option


def _age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = int((now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


@click.command()
@json_option
def inbox(as_json: bool) -> None:
    """Inbound messages pending, in progress and failed, by age (oldest shown)."""

    async def read(db: AsyncSession) -> list[Backlog]:
        return await inbox_backlog(db=db)

    backlog = in_transaction(read)
    now = datetime.now(UTC)
    brackets = [name for name, _ in AGES] + ["older"]
    data = {
        row.status: {
            "total": row.total,
            **row.by_age,
            "oldest": row.oldest.isoformat() if row.oldest else None,
        }
        for row in backlog
    }
    header = f"{'status':<11}{'total':>6}" + "".join(f"{b:>10}" for b in brackets) + "  oldest"
    lines = [header] + [
        f"{row.status:<11}{row.total:>6}"
        + "".join(f"{row.by_age[b]:>10}" for b in brackets)
        + f"  {_age(row.oldest, now)}"
        for row in backlog
    ]
    emit(as_json, data, "\n".join(lines))


@click.group()
def conversation() -> None:
    """Conversations: a user's session with a builder's agent."""


@conversation.command("list")
@click.option("--builder", "builder_id", type=click.UUID, help="Only this builder's.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE),
    default=20,
    show_default=True,
    help="How many of the conversations active last to show.",
)
@json_option
def conversation_list(builder_id: uuid.UUID | None, limit: int, as_json: bool) -> None:
    """The conversations active last, newest first: id, builder, who (number masked),
    when the last message was stored (UTC) and status."""

    async def read(db: AsyncSession) -> list[RecentConversation]:
        if builder_id is not None:
            await existing_builder(builder_id, db=db)
        return await recent_conversations(limit=limit, builder_id=builder_id, db=db)

    rows = [
        {
            "id": str(each.id),
            "builder_id": str(each.builder_id),
            "builder": each.builder_name,
            "platform": each.platform,
            "user": mask_numbers(each.external_id),
            "display_name": each.display_name,
            "last_message_at": each.last_message_at.isoformat() if each.last_message_at else None,
            "status": each.status,
        }
        for each in in_transaction(read)
    ]
    lines = [
        f"{row['id']}  {row['builder']}  "
        + (f"{row['display_name']} " if row["display_name"] else "")
        + f"{row['user']}  {_when(row['last_message_at'])}  {row['status']}"
        for row in rows
    ]
    emit(as_json, rows, "\n".join(lines) or "no conversations")


def _when(iso: str | None) -> str:
    return f"{datetime.fromisoformat(iso):%Y-%m-%d %H:%M}" if iso else "-"


@conversation.command("show")
@click.argument("session_id", type=click.UUID)
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_PAGE),
    default=50,
    show_default=True,
    help="How many of the latest items to show.",
)
@json_option
def conversation_show(session_id: uuid.UUID, limit: int, as_json: bool) -> None:
    """Print SESSION_ID's transcript (its latest items), as the dashboard shows it."""

    async def read(db: AsyncSession) -> tuple[SessionSummary, list[SessionItem], bool]:
        summary = await session_with_status(session_id, db=db)
        if summary is None:
            raise click.ClickException(f"no conversation with id {session_id}")
        items, more = await items_page(session_id, limit=limit, db=db)
        return summary, items, more

    summary, items, more = in_transaction(read)
    lines = [(item, transcript_line(item.item_data)) for item in items]
    data = {
        "id": str(summary.id),
        "builder_id": str(summary.builder_id),
        "user": mask_numbers(summary.external_id),
        "display_name": summary.display_name,
        "status": summary.status,
        "item_count": summary.item_count,
        "earlier_items": more,
        "items": [
            {
                "sequence": item.sequence,
                "created_at": as_utc(item.created_at).isoformat(),
                "role": line.role,
                "text": line.text,
            }
            for item, line in lines
        ],
    }
    who = f"{summary.display_name} " if summary.display_name else ""
    text = [f"{who}{data['user']} ({summary.status}, {summary.item_count} items)"]
    if more:
        text.append(f"… {summary.item_count - len(items)} earlier items (--limit)")
    text += [
        f"{as_utc(item.created_at):%Y-%m-%d %H:%M}  {line.role:>9}: "
        + (one_line(line.text) if line.role == "tool" else line.text)
        for item, line in lines
    ]
    emit(as_json, data, "\n".join(text))
