"""One turn: run the agent on the conversation's `DatabaseSession` for the turn's
messages, record the reply once, send it, close the turn.

History is never assembled here; the runner loads and saves it through the session.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import openai
from agents import (
    InputGuardrailTripwireTriggered,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OutputGuardrailTripwireTriggered,
    Runner,
    UserError,
)
from agents.items import TResponseInputItem
from sqlalchemy.ext.asyncio import AsyncSession

from db.builders import get_builder
from db.conversations import last_item, renew_lease
from db.logs import mask_numbers
from db.models import (
    UNSUPPORTED_KIND,
    Builder,
    Channel,
    InboundMessage,
    OutboundMessage,
    OutboundStatus,
    Turn,
)
from db.outbox import mark_send_failed, mark_sent, record_reply, replies_of
from db.transcript import content_text
from db.turns import finish_turn, messages_of
from worker.agent import MAX_TURNS, TurnContext, build_agent
from worker.channels.base import OutboundChannel, PermanentSendError, TransientSendError
from worker.channels.formatting import markdown_to_whatsapp
from worker.channels.splitting import split_text
from worker.delivery import send_with_retries, typing_shown
from worker.runtime import Runtime
from worker.turn_session import LeaseLostError, TurnSession

logger = logging.getLogger(__name__)

DEFAULT_UNSUPPORTED_REPLY = (
    "Sorry, I can't read that kind of message yet. Could you send it as text?"
)

_PERMANENT_RUN_ERRORS = (
    MaxTurnsExceeded,
    ModelBehaviorError,
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    UserError,
)


class TransientTurnError(Exception):
    """Worth another attempt of the same turn."""


class PermanentTurnError(Exception):
    """The turn cannot succeed; it ends failed with this reason."""


async def run_turn(turn: Turn, *, lease: uuid.UUID, runtime: Runtime) -> None:
    settings = runtime.settings
    async with runtime.sessionmaker() as db:
        messages = await messages_of(turn.id, db=db)
        replies = await replies_of(turn.id, db=db)
        channel = await db.get(Channel, messages[0].channel_id) if messages[0].channel_id else None
        builder = await get_builder(channel.builder_id, db=db) if channel else None
    if channel is None or builder is None:
        raise PermanentTurnError("the conversation's channel or builder was removed")
    if turn.attempts > settings.turn_max_attempts:
        raise PermanentTurnError(
            f"gave up after {settings.turn_max_attempts} attempts: {turn.error}"
        )
    logger.info(
        "turn %s of session %s: answering %s (%d message(s), attempt %d)",
        turn.id,
        turn.session_id,
        mask_numbers(messages[-1].sender),
        len(messages),
        turn.attempts,
    )
    outbound = runtime.channel(channel.provider)
    if not replies:
        async with typing_shown(
            outbound,
            sender=channel.address,
            message_id=messages[-1].provider_message_id,
            refresh_seconds=settings.typing_refresh_seconds,
        ):
            reply = await _generate_reply(turn, messages, builder, lease=lease, runtime=runtime)
        async with runtime.sessionmaker.begin() as db:
            await hold_lease(turn.session_id, lease, runtime=runtime, db=db)
            replies = await record_reply(
                session_id=turn.session_id,
                turn_id=turn.id,
                channel_id=channel.id,
                recipient=messages[-1].sender,
                parts=split_text(markdown_to_whatsapp(reply), outbound.max_message_length),
                db=db,
            )
    await _send_pending(
        replies, sender=channel.address, outbound=outbound, lease=lease, runtime=runtime
    )
    async with runtime.sessionmaker.begin() as db:
        await finish_turn(turn.id, db=db)
    logger.info("turn %s replied (%d part(s), attempt %d)", turn.id, len(replies), turn.attempts)


async def _generate_reply(
    turn: Turn,
    messages: list[InboundMessage],
    builder: Builder,
    *,
    lease: uuid.UUID,
    runtime: Runtime,
) -> str:
    """Run the agent for this turn. A retried turn whose input is already stored
    continues with `input=[]`; one whose run already finished reuses that answer.
    Messages the agent cannot use get the builder's canned reply, stored like any turn."""
    run_input: list[TResponseInputItem] = []
    if turn.input_saved_at is None:
        run_input = [{"role": "user", "content": _user_text(message)} for message in messages]
    else:
        async with runtime.sessionmaker() as db:
            newest = await last_item(turn.session_id, db=db)
        if (
            newest is not None
            and newest.sequence > (turn.input_sequence or 0)
            and _is_assistant_message(newest.item_data)
        ):
            return content_text(newest.item_data.get("content"))
    session = TurnSession(
        turn.session_id,
        engine=runtime.engine,
        turn_id=turn.id,
        lease_token=lease,
        saves_input=bool(run_input),
    )
    if all(message.kind == UNSUPPORTED_KIND for message in messages):
        canned = builder.unsupported_reply or DEFAULT_UNSUPPORTED_REPLY
        await session.add_items([*run_input, {"role": "assistant", "content": canned}])
        return canned
    agent = build_agent(builder, runtime.model(builder.model))
    context = TurnContext(builder.id, turn.session_id, user_name=messages[-1].profile_name)
    timeout = runtime.settings.run_timeout_seconds
    try:
        async with asyncio.timeout(timeout):
            result = await Runner.run(
                agent, run_input, session=session, context=context, max_turns=MAX_TURNS
            )
    except TimeoutError as error:
        raise TransientTurnError(f"the agent run took longer than {timeout:g}s") from error
    except _PERMANENT_RUN_ERRORS as error:
        raise PermanentTurnError(f"{type(error).__name__}: {error}") from error
    except openai.APIStatusError as error:
        if error.status_code in (408, 409, 429) or error.status_code >= 500:
            raise TransientTurnError(f"model API {error.status_code}") from error
        raise PermanentTurnError(f"model API {error.status_code}: {error.message}") from error
    except openai.APIConnectionError as error:
        raise TransientTurnError(f"model API unreachable: {error}") from error
    return str(result.final_output)


async def _send_pending(
    replies: list[OutboundMessage],
    *,
    sender: str,
    outbound: OutboundChannel,
    lease: uuid.UUID,
    runtime: Runtime,
) -> None:
    for reply in replies:
        if reply.status != OutboundStatus.PENDING:
            continue
        async with runtime.sessionmaker.begin() as db:
            await hold_lease(reply.session_id, lease, runtime=runtime, db=db)
        try:
            sent = await send_with_retries(
                outbound, sender=sender, recipient=reply.recipient, text=reply.text
            )
        except TransientSendError as error:
            raise TransientTurnError(f"send failed: {error}") from error
        except PermanentSendError as error:
            async with runtime.sessionmaker.begin() as db:
                await mark_send_failed(reply.id, error=str(error), db=db)
            raise PermanentTurnError(f"send failed: {error}") from error
        async with runtime.sessionmaker.begin() as db:
            await mark_sent(
                reply.id, provider_message_id=sent.provider_message_id, status=sent.status, db=db
            )


async def hold_lease(
    session_id: uuid.UUID, lease: uuid.UUID, *, runtime: Runtime, db: AsyncSession
) -> None:
    """Extend our lease before acting on the conversation, or stop if it was taken over."""
    renewed = await renew_lease(
        session_id, lease, ttl_seconds=runtime.settings.conversation_lease_seconds, db=db
    )
    if not renewed:
        raise LeaseLostError(f"session {session_id} is leased to another worker")


def _user_text(message: InboundMessage) -> str:
    """The agent input for one WhatsApp message: its text and what was attached."""
    lines = [message.text] if message.text else []
    for media in message.media:
        what = media.get("content_type") or media.get("kind") or "file"
        name = f": {media['filename']}" if media.get("filename") else ""
        lines.append(f"[{what} attached{name}]")
    return "\n".join(lines) or "[empty message]"


def _is_assistant_message(item: dict[str, Any]) -> bool:
    return item.get("type", "message") == "message" and item.get("role") == "assistant"
