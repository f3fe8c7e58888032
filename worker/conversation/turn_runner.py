"""One turn: run the agent on the conversation's `DatabaseSession` for the turn's
messages, record the reply once, send it, close the turn.

History is never assembled here; the runner loads and saves it through the session.
"""

from __future__ import annotations

import logging
from typing import Any

from agents.items import TResponseInputItem
from agents.memory import SessionInputCallback

from db.core.logging_setup import mask_numbers
from db.lossless_json import plain_text
from db.media import media_of_messages
from db.models import (
    REACTION_KIND,
    RECORDED_ONLY_KINDS,
    UNSUPPORTED_KIND,
    Builder,
    Channel,
    InboundMessage,
    SessionItem,
    Turn,
)
from db.offered_options import chosen, picked_number
from db.outbox import last_offered_options, reached_user_before
from db.sessions import follow_number_change, item_sequences, latest_items
from db.transcript import content_text
from db.turn_session import TurnSession
from worker.agent.choices import Reply
from worker.conversation.agent_run import history_from_a_user_message, history_window, run_agent
from worker.conversation.delivery import typing_shown
from worker.conversation.lease import ConversationLease
from worker.conversation.loaded_turn import LoadedTurn, reload_turn
from worker.conversation.replies import send_reply, send_unsent
from worker.errors import PermanentTurnError
from worker.media.inbound_media import user_items
from worker.process.runtime import Runtime
from worker.process.turn_metrics import RECORDED, REPLIED, WHATSAPP, observed_turn

logger = logging.getLogger(__name__)

DEFAULT_FALLBACK_REPLY = (
    "Sorry, something went wrong on our side and I can't answer that right now. "
    "Please try again a little later."
)
DEFAULT_UNSUPPORTED_REPLY = (
    "Sorry, I can't read that kind of message yet. Could you send it as text?"
)


@observed_turn
async def run_turn(loaded: LoadedTurn, *, lease: ConversationLease, runtime: Runtime) -> str:
    """Answer the turn and send the reply (`REPLIED`), or only record a turn with
    nothing to answer (`RECORDED`); the caller closes the turn in the transaction that
    moves the conversation on."""
    settings = runtime.settings
    turn, messages, channel, builder = loaded.turn, loaded.messages, loaded.channel, loaded.builder
    if turn.attempts > settings.turn_max_attempts:
        raise PermanentTurnError(
            f"gave up after {settings.turn_max_attempts} attempts: {turn.error}"
        )
    await _follow_number_changes(turn, messages, runtime=runtime)
    if not any(answered(message, builder) for message in messages):
        await record_input(loaded, lease=lease, runtime=runtime)
        logger.info("turn %s: nothing to answer in %d message(s)", turn.id, len(messages))
        return RECORDED
    logger.info(
        "turn %s of session %s: answering %s (%d message(s), attempt %d)",
        turn.id,
        turn.session_id,
        mask_numbers(messages[-1].sender),
        len(messages),
        turn.attempts,
    )
    replies = loaded.replies
    if replies:  # recorded by an earlier attempt
        await send_unsent(replies, channel=channel, lease=lease, runtime=runtime)
    else:
        async with typing_shown(
            runtime.channel(channel),
            sender=channel.address,
            message_id=messages[-1].provider_message_id,
            refresh_seconds=settings.typing_refresh_seconds,
        ):
            reply = await _generate_reply(loaded, lease=lease, runtime=runtime)
        replies = await send_reply(
            turn,
            reply.text,
            options=reply.options,
            spoken=builder.voice_replies and await _user_spoke(messages, runtime=runtime),
            channel=channel,
            recipient=messages[-1].sender,
            lease=lease,
            runtime=runtime,
        )
    logger.info("turn %s replied (%d part(s), attempt %d)", turn.id, len(replies), turn.attempts)
    return REPLIED


async def record_input(loaded: LoadedTurn, *, lease: ConversationLease, runtime: Runtime) -> None:
    """Store the turn's messages in the history without running the agent (once): the
    model reads them as context next time."""
    turn = loaded.turn
    if turn.input_saved_at is None:
        session = _session_for(turn, lease=lease, runtime=runtime, saves_input=True, window=0)
        await session.add_items(
            await _user_items(turn, loaded.messages, channel=loaded.channel, runtime=runtime)
        )


def answered(message: InboundMessage, builder: Builder) -> bool:
    """Whether the agent answers this message: not reactions (unless the builder made
    them input), deletes, edits, call-permission replies or system messages, which are
    only recorded in the conversation (the model reads them as context next time)."""
    if message.kind == REACTION_KIND:
        return builder.reactions_as_input
    return message.kind not in RECORDED_ONLY_KINDS


async def _user_spoke(messages: list[InboundMessage], *, runtime: Runtime) -> bool:
    """Whether the turn's messages include a voice note (or other audio) that was heard:
    what a builder's `voice_replies` answers in kind."""
    with_media = [message.id for message in messages if message.media]
    if not with_media:
        return False
    async with runtime.sessionmaker() as db:
        kept = await media_of_messages(with_media, db=db)
    return any(media.kind == "audio" and media.transcript for media in kept.values())


async def _follow_number_changes(
    turn: Turn, messages: list[InboundMessage], *, runtime: Runtime
) -> None:
    """A user who changed their number keeps this conversation, reached at the new one."""
    numbers = [number for message in messages if (number := _new_number(message))]
    if not numbers:
        return
    async with runtime.sessionmaker.begin() as db:
        for number in numbers:
            await follow_number_change(turn.session_id, number, db=db)


def _new_number(message: InboundMessage) -> str | None:
    """The number a Meta `user_changed_number` system message moves the user to."""
    if message.kind != "system" or not isinstance(message.payload, dict):
        return None
    body = message.payload.get("message")
    system = body.get("system") if isinstance(body, dict) else None
    if not isinstance(system, dict) or system.get("type") != "user_changed_number":
        return None
    number = system.get("wa_id")
    return number.lstrip("+") if isinstance(number, str) and number.strip("+") else None


async def send_fallback(turn: Turn, *, lease: ConversationLease, runtime: Runtime) -> None:
    """Tell the user once that this turn cannot be answered: the builder's fallback text,
    stored in the session like any answer. Skipped when this try recorded a reply, or an
    earlier try (before an operator's retry) got one to the user."""
    loaded = await reload_turn(turn, runtime=runtime)
    if loaded.replies:
        return
    if loaded.turn.retries:
        async with runtime.sessionmaker() as db:
            if await reached_user_before(turn.id, retry=loaded.turn.retries, db=db):
                return
    text = loaded.builder.fallback_reply or DEFAULT_FALLBACK_REPLY
    input_saved = loaded.turn.input_saved_at is not None
    user_input = []
    if not input_saved:
        user_input = await _user_items(
            turn, loaded.messages, channel=loaded.channel, runtime=runtime, fetch=False
        )
    session = _session_for(
        turn, lease=lease, runtime=runtime, saves_input=not input_saved, window=0
    )
    await session.add_items([*user_input, {"role": "assistant", "content": text}])
    await send_reply(
        turn,
        text,
        channel=loaded.channel,
        recipient=loaded.messages[-1].sender,
        lease=lease,
        runtime=runtime,
    )


async def _generate_reply(
    loaded: LoadedTurn, *, lease: ConversationLease, runtime: Runtime
) -> Reply:
    """Run the agent for this turn, its messages' media fetched and read first. A
    retried turn whose input is already stored continues with `input=[]`; one whose run
    already finished reuses that answer (this try's: an earlier try's, such as the
    fallback before an operator's retry, is not one). Messages the agent cannot use get
    the builder's canned reply, stored like any turn. What the run cost goes to
    `loaded.run_stats`."""
    turn, messages, channel, builder = loaded.turn, loaded.messages, loaded.channel, loaded.builder
    run_input: list[TResponseInputItem] = []
    window = history_window(builder, runtime.settings)
    view: SessionInputCallback | None = None
    finished: list[dict[str, Any]] = []
    answered = None
    if turn.input_saved_at is None:
        run_input = await _user_items(turn, messages, channel=channel, runtime=runtime)
    else:
        async with runtime.sessionmaker() as db:
            latest = await latest_items(turn.session_id, 2, db=db)
            finished = [item.item_data for item in latest if _stored_by_this_try(turn, item)]
            answered = _answer_in(finished)
            if answered is None and turn.retries and turn.input_sequence is not None:
                sequences = await item_sequences(turn.session_id, db=db)
                view = _as_it_stood(turn, len(messages), sequences, window)
                window = 0  # the whole history is read; the view keeps the window
    session = _session_for(
        turn, lease=lease, runtime=runtime, saves_input=bool(run_input), window=window
    )
    if answered is not None:
        if not _is_assistant_message(finished[0]):  # its run stored the offer, not its text
            await session.add_items([{"role": "assistant", "content": answered.as_read}])
        return answered
    if all(message.kind == UNSUPPORTED_KIND for message in messages):
        canned = builder.unsupported_reply or DEFAULT_UNSUPPORTED_REPLY
        await session.add_items([*run_input, {"role": "assistant", "content": canned}])
        return Reply(canned)
    answer = await run_agent(
        builder,
        session,
        run_input,
        runtime=runtime,
        platform=WHATSAPP,
        user_name=messages[-1].profile_name,
        view=view,
        on_stats=loaded.run_stats.append,
    )
    # The reply is stored and sent as text: a NUL or lone surrogate from the model is U+FFFD.
    return Reply(plain_text(answer.text), answer.options)


def _stored_by_this_try(turn: Turn, item: SessionItem) -> bool:
    """Whether this try's run stored `item`: after the turn's input and the retry's start."""
    return item.sequence > (turn.input_sequence or 0) and item.sequence >= (
        turn.retry_from_sequence or 0
    )


def _answer_in(newest_first: list[dict[str, Any]]) -> Reply | None:
    """The answer a finished run stored, from its newest items: its assistant message,
    with the options the `reply_with_options` output just before it offered; or that
    output alone when the run died before its text was stored."""
    if not newest_first:
        return None
    newest = newest_first[0]
    if _is_assistant_message(newest):
        before = newest_first[1] if len(newest_first) > 1 else {}
        offered = Reply.from_offer(before.get("output"))
        return offered or Reply(content_text(newest.get("content")))
    return Reply.from_offer(newest.get("output"))


def _session_for(
    turn: Turn,
    *,
    lease: ConversationLease,
    runtime: Runtime,
    saves_input: bool,
    window: int,
) -> TurnSession:
    """`window`: how many of the latest items the runner reads (0: all)."""
    return TurnSession(
        turn.session_id,
        engine=runtime.engine,
        turn_id=turn.id,
        lease_token=lease.token,
        saves_input=saves_input,
        history_window=window,
        statements=runtime.statements,
    )


def _as_it_stood(
    turn: Turn, inputs: int, sequences: list[int], window: int
) -> SessionInputCallback:
    """What the model of an operator's retry reads: the conversation as it stood when the
    turn's `inputs` messages arrived, ending with them, then what this retry has done (a
    killed attempt's tool calls); not what an earlier try (the fallback) or a later turn
    added. `sequences` are the whole history's, item by item; `window` as for any turn."""
    input_end = (turn.input_sequence or 0) + inputs
    retry_from = turn.retry_from_sequence or 0

    def view(
        history: list[TResponseInputItem], new_input: list[TResponseInputItem]
    ) -> list[TResponseInputItem]:
        kept = [
            item
            for item, sequence in zip(history, sequences, strict=True)
            if sequence < input_end or sequence >= retry_from
        ]
        return history_from_a_user_message(kept[-window:] if window else kept, new_input)

    return view


async def _user_items(
    turn: Turn,
    messages: list[InboundMessage],
    *,
    channel: Channel,
    runtime: Runtime,
    fetch: bool = True,
) -> list[TResponseInputItem]:
    """The turn's input: one user item per WhatsApp message, in arrival order, media
    read (`worker.media.inbound_media.user_items`). A message that is only a number says
    which of the options the latest reply offered it picks ("2 (chose: Tomorrow 10:00)");
    those are read only when a message is one."""
    first_try = fetch and turn.attempts == 1 and turn.retries == 0
    items = await user_items(
        messages, channel=channel, runtime=runtime, fetch=fetch, first_try=first_try
    )
    if not any(picked_number(message.text) is not None for message in messages):
        return items
    async with runtime.sessionmaker() as db:
        offered = await last_offered_options(turn.session_id, db=db)
    for number, message in enumerate(messages):
        choice = chosen(message.text, offered)
        if choice and not message.media:
            items[number] = {"role": "user", "content": f"{message.text.strip()} (chose: {choice})"}
    return items


def _is_assistant_message(item: dict[str, Any]) -> bool:
    return item.get("type", "message") == "message" and item.get("role") == "assistant"
