"""A human's reply from the dashboard: stored in the session as an assistant message
(so the agent knows it later) and sent through the conversation's channel. In a paused
conversation the messages waiting are stored first, unanswered: the human answered them.

It takes the conversation's lease like a turn, so it never lands in the middle of one.
A free-form reply outside WhatsApp's 24-hour window is refused before anything is
stored (the provider would refuse it); an approved template goes instead, stored as the
text the user reads.
"""

from __future__ import annotations

import logging
import uuid

from db.agent_session import DatabaseSession
from db.core.log_context import log_context
from db.core.logging_setup import mask_numbers
from db.models import AgentSessionRow, Channel, OutboundMessage
from db.outbox import replies_of
from db.reply_window import CLOSED_REASON, reply_window
from db.sessions import last_item
from db.takeover import fail_operator_turn, record_operator_turn, reply_route
from db.templates import FilledTemplate
from worker.conversation.lease import take_lease
from worker.conversation.replies import send_reply
from worker.conversation.waiting import record_waiting
from worker.errors import PermanentTurnError, TransientTurnError
from worker.process.runtime import Runtime

logger = logging.getLogger(__name__)


class ReplyRefused(Exception):
    """The reply cannot reach the user; nothing was stored or sent. The message says why."""


async def reply_as_human(
    session_id: uuid.UUID, text: str, *, runtime: Runtime
) -> list[OutboundMessage]:
    """Store and send `text`; returns the parts sent (none for a web conversation, which
    has no channel: the reply is only stored). A refused send is kept as `failed`;
    `ConversationBusy` while a turn holds the conversation; `ReplyRefused` outside the
    24-hour window."""
    with log_context(session_id=session_id):
        return await _reply(session_id, text, None, runtime=runtime)


async def send_template_as_human(
    session_id: uuid.UUID, template: FilledTemplate, *, runtime: Runtime
) -> list[OutboundMessage]:
    """Store and send an approved template (the way back to a user after the 24-hour
    window); the session keeps its filled body. `ReplyRefused` for a conversation not on
    WhatsApp, or on another provider than the template's."""
    with log_context(session_id=session_id):
        return await _reply(session_id, template.text, template, runtime=runtime)


async def _reply(
    session_id: uuid.UUID, text: str, template: FilledTemplate | None, *, runtime: Runtime
) -> list[OutboundMessage]:
    async with runtime.sessionmaker.begin() as db:
        route = await reply_route(session_id, db=db)
        window = await reply_window(session_id, db=db)
        _refusal(route, window is None or window.is_open(), template)
        lease = await take_lease(session_id, runtime=runtime, db=db)
        conversation = await db.get(AgentSessionRow, session_id)
        paused = conversation is not None and conversation.paused_at is not None
    async with lease:
        if route is not None:
            # Before anything is stored: a number whose credentials do not decrypt
            # refuses the reply whole (UnreadableChannelCredentials), not half-recorded.
            runtime.channel(route[0])
        if paused:
            # What waited is what the human answers: stored before the reply, and so
            # never answered again by the bot.
            await record_waiting(session_id, lease=lease, runtime=runtime)
        session = DatabaseSession(session_id, engine=runtime.engine, fencing_token=lease.token)
        await session.add_items([{"role": "assistant", "content": text}])
        async with runtime.sessionmaker.begin() as db:
            newest = await last_item(session_id, db=db)
            assert newest is not None
            turn = await record_operator_turn(session_id, newest.sequence, db=db)
        if route is None:
            return []
        channel, recipient = route
        try:
            await send_reply(
                turn,
                text,
                channel=channel,
                recipient=recipient,
                lease=lease,
                runtime=runtime,
                template=template,
            )
        except (TransientTurnError, PermanentTurnError) as error:
            # Nothing retries a human's reply: the operator sees it failed, and may resend.
            reason = str(error)
            logger.warning("human reply on session %s: %s", session_id, mask_numbers(reason))
            async with runtime.sessionmaker.begin() as db:
                await fail_operator_turn(turn.id, reason, db=db)
        async with runtime.sessionmaker() as db:
            return await replies_of(turn.id, retry=turn.retries, db=db)


def _refusal(
    route: tuple[Channel, str] | None, window_open: bool, template: FilledTemplate | None
) -> None:
    """ReplyRefused when the reply cannot reach the user as asked."""
    if template is None:
        if route is not None and not window_open:
            raise ReplyRefused(CLOSED_REASON)
        return
    if route is None:
        raise ReplyRefused("this conversation is not on WhatsApp: templates are WhatsApp's")
    if route[0].provider != template.provider:
        raise ReplyRefused(
            f"template {template.name!r} is a {template.provider} template; this "
            f"conversation is on {route[0].provider}"
        )
