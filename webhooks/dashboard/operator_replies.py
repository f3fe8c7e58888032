"""A human's reply or an approved template, sent from the conversation page's forms
(`actions`) or the JSON API (`POST /api/sessions/{id}/reply`, `…/template`): the same
checks and the same refusals (409 with the reason) for both."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from db.dashboard_queries import SessionSummary
from db.models import MessageTemplate, OutboundMessage
from db.templates import TemplateVariablesError, fill_template
from webhooks.dashboard.auth import check_csrf_header
from webhooks.dashboard.lookups import visible_session
from worker.channels.pool import UnreadableChannelCredentials
from worker.conversation.human_reply import ReplyRefused, reply_as_human, send_template_as_human
from worker.conversation.lease import ConversationBusy

MAX_REPLY_CHARS = 4096
MAX_VARIABLES = 50


def checked_text(raw: object) -> str:
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise HTTPException(400, "the reply is empty")
    if "\x00" in text:
        raise HTTPException(400, "the reply contains a NUL character (U+0000)")
    if len(text) > MAX_REPLY_CHARS:
        raise HTTPException(413, f"the reply is longer than {MAX_REPLY_CHARS} characters")
    return text


async def human_reply(
    request: Request, session: SessionSummary, text: str
) -> list[OutboundMessage]:
    """Send `text` as the operator; 409 when the window is closed or a turn holds it."""
    try:
        return await reply_as_human(session.id, text, runtime=request.app.state.runtime)
    except ReplyRefused as refused:
        raise HTTPException(409, f"Reply not sent: {refused}") from refused
    except ConversationBusy as busy:
        raise HTTPException(409, f"{busy}; try again in a moment") from busy


async def template_reply(
    request: Request, session: SessionSummary, template_id: object, values: Sequence[object]
) -> list[OutboundMessage]:
    """Send the builder's approved template `template_id` with `values` for its
    variables; 404 for a template not the builder's, 400 for values that do not fit it,
    409 when it cannot reach this conversation."""
    if len(values) > MAX_VARIABLES or not all(isinstance(value, str) for value in values):
        raise HTTPException(400, f"variables must be up to {MAX_VARIABLES} strings")
    try:
        wanted = uuid.UUID(str(template_id))
    except ValueError:
        raise HTTPException(404, "no such template") from None
    runtime = request.app.state.runtime
    async with runtime.sessionmaker() as db:
        template = await db.get(MessageTemplate, wanted)
    if template is None or template.builder_id != session.builder_id:
        raise HTTPException(404, "no such template")
    if template.status != "APPROVED":
        raise HTTPException(409, f"template {template.name!r} is {template.status}, not approved")
    try:
        filled = fill_template(template, [str(value) for value in values])
    except TemplateVariablesError as wrong:
        raise HTTPException(400, str(wrong)) from wrong
    if "\x00" in filled.text:
        raise HTTPException(400, "a variable contains a NUL character (U+0000)")
    try:
        return await send_template_as_human(session.id, filled, runtime=runtime)
    except ReplyRefused as refused:
        raise HTTPException(409, f"Template not sent: {refused}") from refused
    except ConversationBusy as busy:
        raise HTTPException(409, f"{busy}; try again in a moment") from busy


def parts_json(parts: list[OutboundMessage]) -> list[dict[str, Any]]:
    return [
        {"id": str(part.id), "part": part.part, "status": part.status, "error": part.error}
        for part in parts
    ]


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError):
        raise HTTPException(400, "the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body


def _answer(parts: list[OutboundMessage]) -> Response:
    failed = [part for part in parts if part.status == "failed"]
    status = 422 if failed else 200
    body: dict[str, Any] = {"sent": bool(parts) and not failed, "parts": parts_json(parts)}
    if failed:
        body["error"] = failed[0].error
    return JSONResponse(body, status_code=status)


async def api_reply(request: Request) -> Response:
    """`{"text": …}`: a human's reply; 409 with the reason outside the 24-hour window."""
    session = await visible_session(request)
    check_csrf_header(request)
    body = await _json_body(request)
    try:
        parts = await human_reply(request, session, checked_text(body.get("text")))
    except UnreadableChannelCredentials as unreadable:
        raise HTTPException(503, f"not sent, nor stored: {unreadable}") from unreadable
    return _answer(parts)


async def api_template(request: Request) -> Response:
    """`{"template_id": …, "variables": ["…", …]}`: an approved template."""
    session = await visible_session(request)
    check_csrf_header(request)
    body = await _json_body(request)
    variables = body.get("variables", [])
    if not isinstance(variables, list):
        raise HTTPException(400, "variables must be a list of strings")
    try:
        parts = await template_reply(request, session, body.get("template_id"), variables)
    except UnreadableChannelCredentials as unreadable:
        raise HTTPException(503, f"not sent, nor stored: {unreadable}") from unreadable
    return _answer(parts)
