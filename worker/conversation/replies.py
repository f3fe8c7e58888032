"""A turn's reply: recorded once (idempotent per turn and part), then sent part by part
by whoever holds the conversation's lease.

A part is marked `sending` before it goes out, in a statement that runs anyway (the one
recording the reply marks the first part; the one marking a part sent marks the next),
and marked sent as soon as the provider answers. A part a resumed turn finds still
`sending` may have reached the user before its worker died: it is looked up at the
provider first, and sent again only if the provider never took it.

A reply may be spoken (`spoken`): synthesised once, kept as a file and recorded as a
single part naming it, so a resumed turn sends that same audio; if it cannot be spoken
it goes as text. A reply may be an approved `template` (outside WhatsApp's 24-hour
window): one part recording which template with which variables, so a resumed turn
sends that same one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import timedelta

from sqlalchemy.exc import InterfaceError, OperationalError

from db.core.clock import as_utc
from db.core.log_context import log_context
from db.core.logging_setup import mask_numbers
from db.media import add_reply_audio, reply_audio
from db.models import Channel, OutboundMessage, OutboundStatus, Turn
from db.offered_options import OfferedOptions
from db.outbox import (
    known_provider_ids,
    mark_refused,
    mark_send_failed,
    mark_sending,
    mark_sent,
    record_reply,
    recorded_provider_id,
)
from db.templates import FilledTemplate
from worker.channels.base import (
    OutboundChannel,
    PermanentSendError,
    SentMessage,
    TransientSendError,
    VoiceNote,
)
from worker.channels.formatting import markdown_to_whatsapp
from worker.channels.splitting import split_text
from worker.conversation.delivery import send_with_retries
from worker.conversation.lease import ConversationLease
from worker.errors import TransientTurnError, UndeliverableError
from worker.media.speech import VOICE_CONTENT_TYPE, SpeechFailed, spoken_text
from worker.media.transcription import audio_duration
from worker.process.runtime import Runtime

logger = logging.getLogger(__name__)

MARK_SENT_ATTEMPTS = 4
MARK_SENT_BACKOFF_SECONDS = 0.2
STATUS_POLL_SECONDS = 0.5
CLOCK_SKEW = timedelta(minutes=5)
"""How far the provider's clock may be behind ours when it dates a message we sent."""


async def send_reply(
    turn: Turn,
    text: str,
    *,
    channel: Channel,
    recipient: str,
    lease: ConversationLease,
    runtime: Runtime,
    options: OfferedOptions | None = None,
    spoken: bool = False,
    template: FilledTemplate | None = None,
) -> list[OutboundMessage]:
    """Record `text` as the turn's reply (in WhatsApp formatting, split to the channel's
    message size; once per try of the turn), then send it part by part from `channel`;
    the last part offers the `options` and is short enough to carry them. A `spoken`
    reply (one offering no options, on a channel that sends voice notes) is one voice
    note, or text when it cannot be spoken. A `template` reply is that template, one
    part whose text is its filled body (`text` is ignored). Returns the parts; a part
    refused for good fails the turn (`UndeliverableError`), one that may go out later
    retries it (`TransientTurnError`)."""
    outbound = runtime.channel(channel)
    formatted = markdown_to_whatsapp(text)
    audio = None
    if spoken and options is None and template is None and outbound.sends_voice:
        audio = await _speech(turn, text, runtime=runtime)
    if template is not None:
        parts = [template.text]
    elif audio is not None:
        parts = [formatted]
    else:
        parts = split_text(formatted, outbound.max_message_length)
    if options is not None and parts:
        parts[-1:] = split_text(parts[-1], outbound.options_text_length(options))
    # A spoken reply's file and its part are recorded together; a text reply is one
    # statement, which commits on its own.
    sessions = runtime.sessionmaker if audio is not None else runtime.autocommit_sessionmaker
    async with sessions.begin() as db:
        await lease.keep(db=db)
        voice = None
        if audio is not None:
            voice = await add_reply_audio(
                turn.session_id,
                audio,
                content_type=VOICE_CONTENT_TYPE,
                duration_seconds=audio_duration(audio),
                store=runtime.media_store,
                db=db,
            )
        replies = await record_reply(
            session_id=turn.session_id,
            turn_id=turn.id,
            retry=turn.retries,
            channel_id=channel.id,
            recipient=recipient,
            parts=parts,
            options=options,
            voice=voice,
            template=template,
            db=db,
        )
    await _send_parts(
        replies, channel, outbound, marked=replies[0].id, lease=lease, runtime=runtime
    )
    return replies


async def _speech(turn: Turn, text: str, *, runtime: Runtime) -> bytes | None:
    """The reply spoken; None (it goes as text) when the synthesiser cannot say it."""
    try:
        return await runtime.synthesiser.synthesise(spoken_text(text))
    except SpeechFailed as error:
        logger.warning("turn %s: reply not spoken, sending text: %s", turn.id, error)
        return None


async def send_unsent(
    replies: list[OutboundMessage],
    *,
    channel: Channel,
    lease: ConversationLease,
    runtime: Runtime,
) -> None:
    """Send the parts of a reply an earlier attempt recorded and did not get out; one it
    left `sending` may have reached the user, and is looked up at the provider first."""
    outbound = runtime.channel(channel)
    await _send_parts(replies, channel, outbound, marked=None, lease=lease, runtime=runtime)


async def _send_parts(
    replies: list[OutboundMessage],
    channel: Channel,
    outbound: OutboundChannel,
    *,
    marked: uuid.UUID | None,
    lease: ConversationLease,
    runtime: Runtime,
) -> None:
    """Send every part not sent yet, in order. `marked`: the part this attempt marked
    `sending` as it recorded the reply; a part some earlier attempt marked so may be out."""
    for index, reply in enumerate(replies):
        if reply.status not in (OutboundStatus.PENDING, OutboundStatus.SENDING):
            continue
        following = replies[index + 1] if index + 1 < len(replies) else None
        if following is not None and following.status != OutboundStatus.PENDING:
            following = None
        await lease.keep_alone()
        sent = None
        if reply.id != marked:  # not marked `sending` by this attempt
            if reply.status == OutboundStatus.SENDING:  # by an earlier one: it may be out
                sent = await _taken_before(reply, channel, outbound, lease=lease, runtime=runtime)
            else:
                async with runtime.autocommit_sessionmaker.begin() as db:
                    await mark_sending(reply.id, db=db)
        if sent is None:
            sent = await _send(reply, channel, outbound, runtime=runtime)
        await _mark_part_sent(reply, sent, following=following, runtime=runtime)
        marked = following.id if following is not None else None


async def _send(
    reply: OutboundMessage, channel: Channel, outbound: OutboundChannel, *, runtime: Runtime
) -> SentMessage:
    """Send one part; a refusal worth retrying puts it back to `pending` (it did not go
    out), one that may have gone out leaves it `sending` for the retry to look up."""
    voice = await _voice_note(reply, runtime=runtime)
    try:
        return await send_with_retries(
            outbound,
            sender=channel.address,
            recipient=reply.recipient,
            text=reply.text,
            outbound_id=reply.id,
            options=OfferedOptions.from_json(reply.options),
            voice=voice,
            template=FilledTemplate.from_json(reply.template),
        )
    except TransientSendError as error:
        if not error.may_have_been_sent:
            async with runtime.autocommit_sessionmaker.begin() as db:
                await mark_refused(reply.id, db=db)
        raise TransientTurnError(f"send failed: {error}", retry_after=error.retry_after) from error
    except PermanentSendError as error:
        async with runtime.sessionmaker.begin() as db:
            await mark_send_failed(reply.id, error=str(error), db=db)
        raise UndeliverableError(f"send failed: {error}") from error


async def _voice_note(reply: OutboundMessage, *, runtime: Runtime) -> VoiceNote | None:
    """The voice note a spoken part sends, as stored when it was recorded; None for a
    text part, or one whose file is gone (the retention sweep): its text goes instead."""
    if reply.media_id is None:
        return None
    async with runtime.sessionmaker() as db:
        found = await reply_audio(reply.media_id, store=runtime.media_store, db=db)
    if found is None:
        logger.warning("reply part %d: its voice note is gone; sending its text", reply.part + 1)
        return None
    return VoiceNote(media_id=reply.media_id, content=found[0], content_type=found[1])


async def _taken_before(
    reply: OutboundMessage,
    channel: Channel,
    outbound: OutboundChannel,
    *,
    lease: ConversationLease,
    runtime: Runtime,
) -> SentMessage | None:
    """What the provider took of `reply` in an earlier attempt that died before recording
    it, or None when it took nothing. A delivery status that named the part says so (the
    receiver records the provider's id from Meta's, which carry our outbound id back),
    waited for up to the channel's `status_wait_seconds`; else the provider's own list
    (Twilio's) of messages with its text since it was recorded, less those other parts
    already have. A provider that cannot be asked now retries the turn later."""
    provider_message_id = reply.provider_message_id or await _named_by_a_status(
        reply, outbound, lease=lease, runtime=runtime
    )
    if provider_message_id is not None:
        logger.info("reply part %d had been sent; not sending it again", reply.part + 1)
        return SentMessage(provider_message_id=provider_message_id, status=OutboundStatus.SENT)
    try:
        found = await outbound.find_sent(
            sender=channel.address,
            recipient=reply.recipient,
            text=reply.text,
            since=as_utc(reply.created_at) - CLOCK_SKEW,
            options=OfferedOptions.from_json(reply.options),
            voice=reply.media_id is not None,
        )
    except TransientSendError as error:
        raise TransientTurnError(
            f"could not ask whether reply part {reply.part + 1} was sent: {error}",
            retry_after=error.retry_after,
        ) from error
    except PermanentSendError as error:
        logger.warning(
            "%s refused to say whether reply part %d was sent; sending it: %s",
            outbound.provider,
            reply.part + 1,
            mask_numbers(str(error)),
        )
        return None
    async with runtime.sessionmaker() as db:
        known = await known_provider_ids([each.provider_message_id for each in found], db=db)
    taken = next((each for each in found if each.provider_message_id not in known), None)
    if taken is not None:
        logger.info("reply part %d had been sent; not sending it again", reply.part + 1)
    else:
        logger.info("reply part %d may have been sent, but was not: sending it", reply.part + 1)
    return taken


async def _named_by_a_status(
    reply: OutboundMessage, outbound: OutboundChannel, *, lease: ConversationLease, runtime: Runtime
) -> str | None:
    """The provider's id a delivery status naming `reply` brought, polled for up to the
    channel's `status_wait_seconds` (none where its statuses cannot name our parts),
    keeping the conversation's lease meanwhile."""
    wait = outbound.status_wait_seconds
    if wait <= 0:
        return None
    logger.info(
        "reply part %d may have been sent: waiting up to %gs for %s's status",
        reply.part + 1,
        wait,
        outbound.provider,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        async with runtime.sessionmaker.begin() as db:
            await lease.keep(db=db)
            found = await recorded_provider_id(reply.id, db=db)
        left = deadline - loop.time()
        if found is not None or left <= 0:
            return found
        await asyncio.sleep(min(STATUS_POLL_SECONDS, left))


async def _mark_part_sent(
    reply: OutboundMessage,
    sent: SentMessage,
    *,
    following: OutboundMessage | None,
    runtime: Runtime,
) -> None:
    """Store that the provider took `reply`, and that `following` is being sent, in one
    statement retried on a fresh connection: a pooled connection that died (terminated
    backend, database restart) fails its next statement once, and a mark lost here would
    make the retry look the part up at the provider. Its log line ties our outbound id to
    the provider's message id."""
    with log_context(outbound_id=reply.id, provider_message_id=sent.provider_message_id):
        logger.info("reply part %d sent (%s)", reply.part + 1, sent.status)
    for attempt in range(1, MARK_SENT_ATTEMPTS + 1):
        try:
            async with runtime.autocommit_sessionmaker.begin() as db:
                await mark_sent(
                    reply.id,
                    provider_message_id=sent.provider_message_id,
                    status=sent.status,
                    following=following.id if following is not None else None,
                    db=db,
                )
            return
        except (OperationalError, InterfaceError):
            if attempt == MARK_SENT_ATTEMPTS:
                raise
            await asyncio.sleep(MARK_SENT_BACKOFF_SECONDS * attempt)
