"""A turn's input from its WhatsApp messages, media included: each file is fetched from
the provider and kept once, voice notes are transcribed and documents read, and every
message becomes one user item (`model_input.user_item`).

A file already kept (an earlier attempt of the turn fetched it) is not fetched again;
a transcript or a document's text, once made, is kept with it. A failure worth another
try raises TransientTurnError (the turn retries); one that never will becomes a line
telling the agent what could not be read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from agents.items import TResponseInputItem

from db.core.credentials import MetaCredentials, TwilioCredentials
from db.media import MediaInfo, NewMedia, add_media, media_of_messages, set_media_text
from db.models import Channel, InboundMessage
from worker.media.documents import document_text
from worker.media.fetching import Downloaded, MediaUnreadable, kind_of, size_cap
from worker.media.model_input import Attachment, Unreadable, user_item
from worker.media.sniffing import TRANSCRIBABLE, declared_family
from worker.media.transcription import audio_duration
from worker.process.runtime import Runtime

logger = logging.getLogger(__name__)


async def user_items(
    messages: list[InboundMessage],
    *,
    channel: Channel,
    runtime: Runtime,
    fetch: bool = True,
    first_try: bool = False,
) -> list[TResponseInputItem]:
    """One user item per message, in arrival order. Without `fetch` (the fallback of a
    turn that failed) only what is already kept is used: nothing is fetched or heard.
    On a turn's `first_try` nothing can have been kept yet, so nothing is looked up."""
    kept: dict[tuple[int, int], MediaInfo] = {}
    if not first_try and any(message.media for message in messages):
        async with runtime.sessionmaker() as db:
            kept = await media_of_messages([message.id for message in messages], db=db)
    items = []
    for message in messages:
        attachments = []
        for position, media in enumerate(message.media):
            found = kept.get((message.id, position))
            attachments.append(
                await _attachment(message, position, media, found, channel, runtime, fetch)
            )
        items.append(user_item(message.text, attachments, voice=_voice_flag(message.media)))
    return items


def _voice_flag(media: list[dict[str, str]]) -> bool | None:
    """Meta's `audio.voice`, as the receiver recorded it; None when the provider (or an
    older record) does not say."""
    flags = {each.get("voice") for each in media} - {None}
    return None if len(flags) != 1 else flags == {"yes"}


async def _attachment(
    message: InboundMessage,
    position: int,
    media: dict[str, str],
    found: MediaInfo | None,
    channel: Channel,
    runtime: Runtime,
    fetch: bool,
) -> Attachment:
    kind = media.get("kind") or kind_of(media.get("content_type", ""))
    content: bytes | None = None
    if found is None:
        if not fetch:
            return Unreadable(kind, "the turn failed before it was fetched")
        try:
            downloaded = await _download(message, media, kind, channel, runtime)
        except MediaUnreadable as error:
            logger.info(
                "inbound %s attachment %d (%s) unreadable: %s", message.id, position, kind, error
            )
            return Unreadable(kind, str(error))
        content = downloaded.content
        found = await _keep(message, position, media, kind, downloaded, runtime)
    if not fetch:
        return found
    try:
        return await _read(found, content, runtime)
    except MediaUnreadable as error:
        logger.info(
            "inbound %s attachment %d (%s) unreadable: %s", message.id, position, kind, error
        )
        named = f"{found.filename}: " if found.filename else ""
        return Unreadable(kind, f"{named}{error}")


async def _download(
    message: InboundMessage, media: dict[str, str], kind: str, channel: Channel, runtime: Runtime
) -> Downloaded:
    settings, fetcher = runtime.settings, runtime.media_fetcher
    cap = size_cap(kind, settings)
    content_type = media.get("content_type", "")
    own = runtime.channels.own_credentials(channel)
    if message.provider == "twilio":
        auth = None
        if isinstance(own, TwilioCredentials):
            auth = (own.account_sid, own.auth_token)
        elif settings.twilio_account_sid and settings.twilio_auth_token:
            auth = (settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value())
        return await fetcher.twilio(
            media.get("url", ""), auth=auth, content_type=content_type, cap=cap
        )
    token = own.access_token if isinstance(own, MetaCredentials) else None
    if token is None and settings.meta_access_token is not None:
        token = settings.meta_access_token.get_secret_value()
    if token is None:
        raise MediaUnreadable("no Meta access token to fetch it with")
    return await fetcher.meta(
        media.get("id", ""), access_token=token, content_type=content_type, cap=cap
    )


async def _keep(
    message: InboundMessage,
    position: int,
    media: dict[str, str],
    kind: str,
    downloaded: Downloaded,
    runtime: Runtime,
) -> MediaInfo:
    assert message.session_id is not None, "a turn's messages belong to its conversation"
    duration = audio_duration(downloaded.content) if kind in ("audio", "video") else None
    new = NewMedia(
        session_id=message.session_id,
        inbound_message_id=message.id,
        position=position,
        kind=kind,
        content_type=downloaded.content_type,
        size_bytes=len(downloaded.content),
        sha256=downloaded.sha256,
        filename=media.get("filename") or None,
        duration_seconds=duration,
    )
    async with runtime.sessionmaker.begin() as db:
        kept = await add_media(new, downloaded.content, store=runtime.media_store, db=db)
    logger.info(
        "inbound %s attachment %d kept: media %s (%s, %d bytes)",
        message.id,
        position,
        kept.id,
        kept.content_type,
        kept.size_bytes,
    )
    return kept


async def _read(media: MediaInfo, content: bytes | None, runtime: Runtime) -> MediaInfo:
    """`media` with its transcript or text, made now when not made before."""
    family = declared_family(media.content_type)
    if media.kind == "audio" and media.transcript is None:
        if family not in TRANSCRIBABLE:
            raise MediaUnreadable(f"{media.content_type} audio cannot be transcribed")
        audio = content if content is not None else await _content(media, runtime)
        transcript = await runtime.transcriber.transcribe(audio, content_type=media.content_type)
        async with runtime.autocommit_sessionmaker.begin() as db:  # one statement
            await set_media_text(media.id, transcript=transcript, db=db)
        return dataclasses.replace(media, transcript=transcript)
    if media.kind == "document" and media.extracted_text is None:
        document = content if content is not None else await _content(media, runtime)
        limit = runtime.settings.media_document_characters
        text = await asyncio.to_thread(
            document_text, document, content_type=media.content_type, limit=limit
        )
        async with runtime.autocommit_sessionmaker.begin() as db:  # one statement
            await set_media_text(media.id, extracted_text=text, db=db)
        return dataclasses.replace(media, extracted_text=text)
    return media


async def _content(media: MediaInfo, runtime: Runtime) -> bytes:
    async with runtime.sessionmaker() as db:
        content = await runtime.media_store.get(media.id, db=db)
    if content is None:
        raise MediaUnreadable("no longer kept")
    return content
