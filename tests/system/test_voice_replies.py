"""Voice notes answered in kind, through the real receiver and Celery worker: a builder with
`voice_replies` answers a heard voice note with the reply spoken by the fake OpenAI's
`/audio/speech`; Meta gets it uploaded and sent by media id, Twilio a `MediaUrl` it
fetches from the receiver's signed, expiring link. Anything else is answered in text."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.core.settings import Settings
from db.media_links import signed_media_url
from db.models import Media
from db.transcript import content_text
from tests.conftest import start_worker
from tests.crash import killed_after_the_provider_took
from tests.factories import (
    FIXTURES,
    META_PHONE_NUMBER_ID,
    builder_with_channel,
    meta_notification,
    meta_text_message,
    post_meta,
    post_signed,
    twilio_form,
)
from tests.fakes.meta import ACCESS_TOKEN, FakeGraphAPI
from tests.fakes.openai import SPOKEN_REPLY, FakeOpenAI
from tests.fakes.server import free_port, serve
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, all_items, outbound_messages
from tests.waiting import at_least, eventually

VOICE_NOTE = (FIXTURES / "media" / "voice_note.ogg").read_bytes()
CORPUS_VOICE = FIXTURES / "corpus" / "meta" / "pywa_message__voice.json"
HEARD = "[voice note 0:02] I'd like to book a table for four"
ANSWER = f"You said: {HEARD}"
LINK_SECRET = "test-media-link-secret-0123456789"
LINK_SECONDS = 3


@pytest.fixture(autouse=True)
async def worker_settles(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    await eventually(partial(all_answered, db_sessions), what="the worker to finish its turns")


@pytest.fixture(scope="module")
def linking_receiver(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A receiver at a known address, and a worker of its own that signs links to it
    (PUBLIC_BASE_URL, MEDIA_LINK_SECRET), as a deployment that sends Twilio voice notes."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **service_env,
        "CELERY_QUEUE": f"wabot-test-{uuid.uuid4().hex[:8]}",
        "PUBLIC_BASE_URL": base_url,
        "MEDIA_LINK_SECRET": LINK_SECRET,
        "MEDIA_LINK_SECONDS": str(LINK_SECONDS),
    }
    from webhooks.combined_app import create_combined_app

    with serve(create_combined_app(Settings(_env_file=None, **env)), port=port):
        worker = start_worker(env, tmp_path_factory.mktemp("voice") / "worker.log")
        try:
            yield base_url
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def voice_form(url: str) -> dict[str, str]:
    return {**twilio_form(""), "NumMedia": "1", "MediaUrl0": url, "MediaContentType0": "audio/ogg"}


async def media_rows(sessions: async_sessionmaker[AsyncSession]) -> list[Media]:
    async with sessions() as db:
        return list(await db.scalars(select(Media).order_by(Media.created_at)))


async def spoken_files(sessions: async_sessionmaker[AsyncSession]) -> list[Media]:
    return [media for media in await media_rows(sessions) if media.inbound_message_id is None]


async def meta_voice_note(
    sessions: async_sessionmaker[AsyncSession], fake_graph: FakeGraphAPI
) -> tuple[bytes, dict[str, Any]]:
    """pywa's captured voice note (its body and `value`), its number a builder's with
    voice replies, its file held by the fake Graph API."""
    body = CORPUS_VOICE.read_bytes()
    value = json.loads(body)["entry"][0]["changes"][0]["value"]
    await builder_with_channel(
        sessions,
        provider="meta",
        address=value["metadata"]["phone_number_id"],
        voice_replies=True,
    )
    fake_graph.add_media(VOICE_NOTE, "audio/ogg", media_id=value["messages"][0]["audio"]["id"])
    return body, value


async def test_a_twilio_voice_note_is_answered_with_a_voice_note_at_a_signed_link(
    db_sessions: async_sessionmaker[AsyncSession],
    linking_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    fake_twilio_server: tuple[FakeTwilio, str],
) -> None:
    await builder_with_channel(db_sessions, voice_replies=True)
    url = fake_twilio.add_media(fake_twilio_server[1], VOICE_NOTE, "audio/ogg")
    async with httpx.AsyncClient() as client:
        answer = await post_signed(client, f"{linking_receiver}/webhooks/twilio", voice_form(url))
        assert answer.status_code == 200
        [sent] = await at_least(fake_twilio.messages, 1, what="the voice reply at the fake Twilio")

        spoken = {"model": "gpt-4o-mini-tts", "voice": "alloy", "response_format": "opus"}
        assert fake_openai.speeches == [{**spoken, "input": ANSWER}]
        assert "Body" not in sent
        link = sent["MediaUrl"]
        assert link.startswith(f"{linking_receiver}/media/replies/")
        [fetched] = fake_twilio.fetched
        assert (fetched["status"], fetched["content_type"]) == (200, "audio/ogg")
        assert fetched["content"] == SPOKEN_REPLY

        # The text is the session's; the part records what it says and the file it sent.
        await eventually(partial(all_answered, db_sessions), what="the turn closed")
        assert content_text((await all_items(db_sessions))[-1]["content"]) == ANSWER
        [reply] = await outbound_messages(db_sessions)
        [spoken] = await spoken_files(db_sessions)
        assert (reply.text, reply.media_id, reply.provider_message_id) == (
            ANSWER,
            spoken.id,
            sent["sid"],
        )
        assert (spoken.content_type, spoken.size_bytes) == ("audio/ogg", len(SPOKEN_REPLY))

        # Only this link, only until it expires; a user's file is never served this way.
        path, query = urlsplit(link).path, parse_qs(urlsplit(link).query)
        tampered = f"{linking_receiver}{path}?expires={int(query['expires'][0]) + 60}"
        tampered += f"&signature={query['signature'][0]}"
        unsigned = f"{linking_receiver}{path}"
        [heard] = [media for media in await media_rows(db_sessions) if media.inbound_message_id]
        theirs = signed_media_url(
            linking_receiver, heard.id, expires=int(time.time()) + 60, secret=LINK_SECRET
        )
        for refused, status in ((tampered, 403), (unsigned, 403), (theirs, 404)):
            answer = await client.get(refused)
            assert (answer.status_code, answer.content) == (status, b""), refused
        await asyncio.sleep(max(0.0, int(query["expires"][0]) - time.time() + 0.5))
        expired = await client.get(link)
        assert (expired.status_code, expired.content) == (403, b"")


async def test_a_meta_voice_note_is_answered_with_an_uploaded_voice_note(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    """pywa's captured voice note: the reply is uploaded to the number's media, then sent
    by its media id as a voice note."""
    body, value = await meta_voice_note(db_sessions, fake_graph)
    phone_number_id = value["metadata"]["phone_number_id"]
    async with httpx.AsyncClient() as client:
        assert (await post_meta(client, f"{live_receiver}/webhooks/meta", body)).status_code == 200
    [sent] = await at_least(fake_graph.messages, 1, what="the voice reply at the fake Graph API")

    [upload] = fake_graph.uploads
    assert upload == {
        "messaging_product": "whatsapp",
        "type": "audio/ogg",
        "filename": "reply.ogg",
        "content_type": "audio/ogg",
        "file": SPOKEN_REPLY,
        "phone_number_id": phone_number_id,
        "access_token": ACCESS_TOKEN,
        "id": upload["id"],
    }
    await eventually(partial(all_answered, db_sessions), what="the turn closed")
    [reply] = await outbound_messages(db_sessions)
    assert sent == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": value["messages"][0]["from"],
        "type": "audio",
        "audio": {"id": upload["id"], "voice": True},
        "biz_opaque_callback_data": str(reply.id),
        "phone_number_id": phone_number_id,
        "access_token": ACCESS_TOKEN,
        "id": sent["id"],
    }
    assert fake_openai.speeches[0]["input"] == ANSWER
    assert reply.text == ANSWER and reply.media_id is not None


async def test_without_the_setting_a_voice_note_is_answered_in_text(
    db_sessions: async_sessionmaker[AsyncSession],
    linking_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    fake_twilio_server: tuple[FakeTwilio, str],
) -> None:
    await builder_with_channel(db_sessions)
    url = fake_twilio.add_media(fake_twilio_server[1], VOICE_NOTE, "audio/ogg")
    async with httpx.AsyncClient() as client:
        await post_signed(client, f"{linking_receiver}/webhooks/twilio", voice_form(url))
    [sent] = await at_least(fake_twilio.messages, 1, what="the reply at the fake Twilio")

    assert (sent["Body"], "MediaUrl" in sent) == (ANSWER, False)
    assert fake_openai.speeches == []
    assert await spoken_files(db_sessions) == []


async def test_a_text_message_is_answered_in_text_even_with_the_setting(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    await builder_with_channel(
        db_sessions, provider="meta", address=META_PHONE_NUMBER_ID, voice_replies=True
    )
    body = meta_notification([meta_text_message("Do you sell rye bread?")])
    async with httpx.AsyncClient() as client:
        await post_meta(client, f"{live_receiver}/webhooks/meta", body)
    [sent] = await at_least(fake_graph.messages, 1, what="the reply at the fake Graph API")

    assert (sent["type"], sent["text"]["body"]) == ("text", "You said: Do you sell rye bread?")
    assert (fake_openai.speeches, fake_graph.uploads) == ([], [])


async def test_speech_that_fails_for_good_is_answered_in_text(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    body, _ = await meta_voice_note(db_sessions, fake_graph)
    fake_openai.speech_failures.append(400)
    async with httpx.AsyncClient() as client:
        await post_meta(client, f"{live_receiver}/webhooks/meta", body)
    [sent] = await at_least(fake_graph.messages, 1, what="the reply at the fake Graph API")

    assert (sent["type"], sent["text"]["body"]) == ("text", ANSWER)
    assert len(fake_openai.speeches) == 1 and fake_graph.uploads == []
    await eventually(partial(all_answered, db_sessions), what="the turn closed")
    [reply] = await outbound_messages(db_sessions)
    assert reply.media_id is None
    assert await spoken_files(db_sessions) == []


@pytest.mark.slow
async def test_a_voice_reply_meta_took_before_its_worker_died_is_not_spoken_or_sent_again(
    db_sessions: async_sessionmaker[AsyncSession],
    private_queue: Any,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
    tmp_path: Path,
) -> None:
    """Resumed, the turn finds its voice part sent (Meta's status names it): one speech
    request, one upload, one message."""
    env, receiver = private_queue(
        CELERY_VISIBILITY_TIMEOUT="5",
        RUN_TIMEOUT_SECONDS="4",
        CONVERSATION_LEASE_SECONDS="6",
        META_STATUS_WAIT_SECONDS="2",
    )
    body, _ = await meta_voice_note(db_sessions, fake_graph)
    fake_graph.hold_after_accept_seconds = 60  # Meta takes the voice note, then the worker dies
    fake_graph.status_webhooks_to = receiver
    doomed = start_worker(env, tmp_path / "doomed.log", concurrency=2)
    async with httpx.AsyncClient() as client:
        assert (await post_meta(client, f"{receiver}/webhooks/meta", body)).status_code == 200

    taken = await killed_after_the_provider_took(
        doomed, fake_graph, env=env, tmp_path=tmp_path, db_sessions=db_sessions
    )

    assert fake_graph.messages == [taken]
    assert taken["type"] == "audio"
    assert (len(fake_openai.speeches), len(fake_graph.uploads)) == (1, 1)
    [reply] = await outbound_messages(db_sessions)
    assert reply.provider_message_id == taken["id"] and reply.media_id is not None
