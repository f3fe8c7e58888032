"""Ops actions on a conversation, from the conversation page's forms (CSRF-checked):
pause the bot, reply as a human (or send an approved template), resume, clear the
memory, retry a failed turn.

Each answers with a redirect back to the conversation and a notice saying what happened.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from db.models import Turn
from db.takeover import retry_turn, set_paused
from webhooks.dashboard.auth import checked_form
from webhooks.dashboard.lookups import path_uuid, visible_session
from webhooks.dashboard.operator_replies import checked_text, human_reply, template_reply
from worker.celery_app import enqueue_inbound
from worker.channels.pool import UnreadableChannelCredentials
from worker.conversation.lease import ConversationBusy
from worker.conversation.memory import clear_memory
from worker.conversation.waiting import resume_bot


def _back(session_id: uuid.UUID, notice: str) -> Response:
    return RedirectResponse(f"/sessions/{session_id}?{urlencode({'notice': notice})}", 303)


async def pause(request: Request) -> Response:
    session = await visible_session(request)
    await checked_form(request)
    async with request.app.state.runtime.sessionmaker.begin() as db:
        await set_paused(session.id, True, db=db)
    return _back(session.id, "Bot paused: new messages are stored but not answered.")


async def resume(request: Request) -> Response:
    """Unpause. `answer=waiting` hands what arrived meanwhile to the worker (answered as
    one turn); `answer=next` records it in the history unanswered, so the bot answers
    only what comes next (the form's default once a human has replied)."""
    session = await visible_session(request)
    form = await checked_form(request)
    answer = str(form.get("answer", "waiting"))
    if answer not in ("waiting", "next"):
        raise HTTPException(400, "answer must be 'waiting' or 'next'")
    try:
        resumed = await resume_bot(
            session.id, answer_waiting=answer == "waiting", runtime=request.app.state.runtime
        )
    except ConversationBusy as busy:
        raise HTTPException(409, "the bot is busy with this conversation; try again") from busy
    if resumed.to_answer:
        await enqueue_inbound(request.app.state.celery, resumed.to_answer[-1:])
    if answer == "waiting":
        notice = f"Bot resumed; answering {len(resumed.to_answer)} waiting message(s)."
    else:
        notice = (
            f"Bot resumed; {resumed.recorded} waiting message(s) kept in the conversation "
            "unanswered; the bot answers what comes next."
        )
    return _back(session.id, notice)


async def reply(request: Request) -> Response:
    """409 with the reason outside the 24-hour window: nothing stored, nothing sent."""
    session = await visible_session(request)
    form = await checked_form(request)
    text = checked_text(form.get("text", ""))
    try:
        sent = await human_reply(request, session, text)
    except UnreadableChannelCredentials as unreadable:
        return _back(session.id, f"Reply not sent, nor stored: {unreadable}")
    failed = [part for part in sent if part.status == "failed"]
    if failed:
        return _back(session.id, f"Reply stored, but sending failed: {failed[0].error}")
    where = "sent and stored" if sent else "stored (this conversation has no WhatsApp channel)"
    return _back(session.id, f"Reply {where}.")


async def template(request: Request) -> Response:
    """An approved template with its variables (the `variable` fields, in order)."""
    session = await visible_session(request)
    form = await checked_form(request)
    values = form.getlist("variable")
    try:
        sent = await template_reply(request, session, form.get("template_id"), values)
    except UnreadableChannelCredentials as unreadable:
        return _back(session.id, f"Template not sent, nor stored: {unreadable}")
    failed = [part for part in sent if part.status == "failed"]
    if failed:
        return _back(session.id, f"Template stored, but sending failed: {failed[0].error}")
    return _back(session.id, "Template sent and stored.")


async def clear(request: Request) -> Response:
    session = await visible_session(request)
    form = await checked_form(request)
    if form.get("confirm") != "yes":
        raise HTTPException(400, "tick the confirmation box to clear the conversation's memory")
    try:
        await clear_memory(session.id, runtime=request.app.state.runtime)
    except ConversationBusy as busy:
        raise HTTPException(
            409, "the bot is answering this conversation; try again in a moment"
        ) from busy
    return _back(
        session.id,
        "Memory cleared: the agent starts this conversation afresh. The transcript is "
        'archived on this page, under "Earlier, cleared on …".',
    )


async def retry(request: Request) -> Response:
    session = await visible_session(request)
    await checked_form(request)
    if session.status == "paused":
        raise HTTPException(409, "the bot is paused; resume it to retry")
    turn_id = path_uuid(request, "turn_id")
    async with request.app.state.runtime.sessionmaker.begin() as db:
        turn = await db.get(Turn, turn_id)
        if turn is None or turn.session_id != session.id:
            raise HTTPException(404, "no such turn")
        reopened = await retry_turn(turn_id, db=db)
    if not reopened:
        raise HTTPException(
            409, "only a failed turn with messages a channel still routes can be retried"
        )
    await enqueue_inbound(request.app.state.celery, reopened[-1:])
    return _back(session.id, f"Retrying: {len(reopened)} message(s) handed back to the bot.")
