"""Media a user sends reach the model: real signed webhooks through the real receiver and
Celery worker, the file fetched from the fake Twilio or Meta media endpoints, a voice
note transcribed by the fake OpenAI, a photo shown as an image with its caption, a PDF
read, on both providers; what the fake model received is what is asserted. (Orders and
Flow replies, which carry no file, reach the model in `test_corpus.py`.)"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Media
from db.transcript import content_text
from tests.factories import (
    FIXTURES,
    META_USER_WA_ID,
    builder_with_channel,
    meta_notification,
    post_meta,
    post_signed,
    twilio_form,
)
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import free_port
from tests.fakes.twilio import ACCOUNT_SID, FakeTwilio
from tests.queries import all_answered, all_items, turns
from tests.waiting import at_least, eventually

MEDIA = FIXTURES / "media"
VOICE_NOTE = (MEDIA / "voice_note.ogg").read_bytes()
PHOTO = (MEDIA / "photo.jpg").read_bytes()
ORDER_PDF = (MEDIA / "order.pdf").read_bytes()
CORPUS_VOICE = FIXTURES / "corpus" / "meta" / "pywa_message__voice.json"
CORPUS_AUDIO = FIXTURES / "corpus" / "meta" / "pywa_message__audio.json"
"""The same OGG/Opus audio as a forwarded file: Meta's `audio.voice` is false."""
FALLBACK = "Sorry, something went wrong"


@pytest.fixture(autouse=True)
async def worker_settles(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    await eventually(partial(all_answered, db_sessions), what="the worker to finish its turns")


@pytest.fixture
def twilio_url(fake_twilio_server: tuple[FakeTwilio, str]) -> str:
    return fake_twilio_server[1]


def twilio_media_form(url: str, content_type: str, body: str = "") -> dict[str, str]:
    return {
        **twilio_form(body),
        "NumMedia": "1",
        "MediaUrl0": url,
        "MediaContentType0": content_type,
    }


def user_texts(request: dict[str, Any]) -> list[str]:
    return [
        content_text(item["content"]) for item in request["input"] if item.get("role") == "user"
    ]


async def media_rows(sessions: async_sessionmaker[AsyncSession]) -> list[Media]:
    async with sessions() as db:
        return list(await db.scalars(select(Media).order_by(Media.created_at)))


async def test_a_twilio_voice_note_is_heard_and_kept_in_words(
    celery_worker: Path,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    twilio_url: str,
) -> None:
    await builder_with_channel(db_sessions)
    url = fake_twilio.add_media(twilio_url, VOICE_NOTE, "audio/ogg")
    async with httpx.AsyncClient() as client:
        answer = await post_signed(
            client, f"{live_receiver}/webhooks/twilio", twilio_media_form(url, "audio/ogg")
        )
    assert answer.status_code == 200
    sent = await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")

    heard = "[voice note 0:02] I'd like to book a table for four"
    [upload] = fake_openai.transcriptions
    assert upload["file"] == VOICE_NOTE
    assert upload["model"] == "gpt-4o-mini-transcribe"
    assert upload["content_type"] == "audio/ogg"
    assert user_texts(fake_openai.requests[0]) == [heard]
    assert sent[0]["Body"] == f"You said: {heard}"
    assert fake_twilio.media_requests == [
        {"media_sid": url.rsplit("/", 1)[1], "account_sid": ACCOUNT_SID}
    ]
    [item] = [item for item in await all_items(db_sessions) if item.get("role") == "user"]
    assert item["content"] == heard
    [row] = await media_rows(db_sessions)
    assert (row.kind, row.content_type, row.size_bytes) == ("audio", "audio/ogg", len(VOICE_NOTE))
    assert row.sha256 == hashlib.sha256(VOICE_NOTE).hexdigest()
    assert row.transcript == "I'd like to book a table for four"


async def test_a_photo_is_shown_in_its_turn_and_only_referenced_in_history(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    twilio_url: str,
) -> None:
    await builder_with_channel(db_sessions)
    url = fake_twilio.add_media(twilio_url, PHOTO, "image/jpeg")
    form = twilio_media_form(url, "image/jpeg", body="Do you have this cake?")
    async with httpx.AsyncClient() as client:
        await post_signed(client, f"{live_receiver}/webhooks/twilio", form)
        await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")
        await post_signed(client, f"{live_receiver}/webhooks/twilio", twilio_form("Thanks!"))
        await at_least(fake_twilio.messages, 2, what="replies at the fake Twilio")

    first, second = fake_openai.requests
    [photo_item] = [item for item in first["input"] if item.get("role") == "user"]
    data_url = f"data:image/jpeg;base64,{base64.b64encode(PHOTO).decode()}"
    assert photo_item["content"] == [
        {"type": "input_text", "text": "[photo, image/jpeg, 2 KB]\nDo you have this cake?"},
        {"type": "input_image", "image_url": data_url, "detail": "auto"},
    ]
    # The next turn does not send the photo again: a line of text stands in for it.
    assert "base64" not in json.dumps(second["input"])
    assert "[this image was shown to you when it arrived" in user_texts(second)[0]

    [row] = await media_rows(db_sessions)
    stored = [item for item in await all_items(db_sessions) if item.get("role") == "user"]
    assert stored[0]["content"][1] == {
        "type": "input_image",
        "image_url": f"wabot-media:{row.id}",
        "detail": "auto",
    }
    assert len(json.dumps(stored[0])) < 300


async def test_a_meta_voice_note_is_fetched_again_when_its_url_expired(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    """pywa's captured voice note, byte for byte: its media id is looked up with the
    number's token; the first URL has expired, so it is looked up again."""
    body = CORPUS_VOICE.read_bytes()
    message = json.loads(body)["entry"][0]["changes"][0]["value"]
    await builder_with_channel(
        db_sessions, provider="meta", address=message["metadata"]["phone_number_id"]
    )
    media_id = message["messages"][0]["audio"]["id"]
    fake_graph.add_media(VOICE_NOTE, "audio/ogg", media_id=media_id)
    fake_graph.expire_once.add(media_id)
    async with httpx.AsyncClient() as client:
        assert (await post_meta(client, f"{live_receiver}/webhooks/meta", body)).status_code == 200
    sent = await at_least(fake_graph.messages, 1, what="replies at the fake Graph API")

    assert fake_graph.media_lookups == [media_id, media_id]
    assert fake_graph.downloads == [media_id, media_id]
    assert fake_openai.transcriptions[0]["file"] == VOICE_NOTE
    heard = "[voice note 0:02] I'd like to book a table for four"
    assert user_texts(fake_openai.requests[0]) == [heard]
    assert sent[0]["text"]["body"] == f"You said: {heard}"


async def test_a_meta_pdf_is_read_with_its_name_and_caption(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address="106540352242922")
    media_id = fake_graph.add_media(ORDER_PDF, "application/pdf")
    document = {
        "id": f"wamid.pdf{media_id}",
        "from": META_USER_WA_ID,
        "timestamp": "1749416383",
        "type": "document",
        "document": {
            "caption": "My order",
            "filename": "order.pdf",
            "mime_type": "application/pdf",
            "sha256": "x",
            "id": media_id,
        },
    }
    async with httpx.AsyncClient() as client:
        await post_meta(client, f"{live_receiver}/webhooks/meta", meta_notification([document]))
    await at_least(fake_graph.messages, 1, what="replies at the fake Graph API")

    assert user_texts(fake_openai.requests[0]) == [
        f"[document order.pdf, application/pdf, {len(ORDER_PDF)} bytes]\n"
        "Order form\nSourdough loaf x 2\nPickup on Saturday at 10:00\nMy order"
    ]


async def test_a_meta_audio_file_is_heard_as_audio_because_meta_says_it_is_no_voice_note(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    """pywa's captured forwarded audio, byte for byte: OGG/Opus like a voice note, but
    `voice: false`, so the agent reads that it is an audio file."""
    body = CORPUS_AUDIO.read_bytes()
    message = json.loads(body)["entry"][0]["changes"][0]["value"]
    assert message["messages"][0]["audio"]["voice"] is False
    await builder_with_channel(
        db_sessions, provider="meta", address=message["metadata"]["phone_number_id"]
    )
    fake_graph.add_media(VOICE_NOTE, "audio/ogg", media_id=message["messages"][0]["audio"]["id"])
    async with httpx.AsyncClient() as client:
        assert (await post_meta(client, f"{live_receiver}/webhooks/meta", body)).status_code == 200
    sent = await at_least(fake_graph.messages, 1, what="replies at the fake Graph API")

    heard = "[audio 0:02] I'd like to book a table for four"
    assert user_texts(fake_openai.requests[0]) == [heard]
    assert sent[0]["text"]["body"] == f"You said: {heard}"


async def test_a_meta_photo_reaches_the_model_as_an_image_with_its_caption(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address="106540352242922")
    media_id = fake_graph.add_media(PHOTO, "image/jpeg")
    photo = {
        "id": f"wamid.photo{media_id}",
        "from": META_USER_WA_ID,
        "timestamp": "1749416383",
        "type": "image",
        "image": {
            "caption": "Is this cake still available?",
            "mime_type": "image/jpeg",
            "sha256": "x",
            "id": media_id,
        },
    }
    async with httpx.AsyncClient() as client:
        await post_meta(client, f"{live_receiver}/webhooks/meta", meta_notification([photo]))
    sent = await at_least(fake_graph.messages, 1, what="replies at the fake Graph API")

    [photo_item] = [item for item in fake_openai.requests[0]["input"] if item.get("role") == "user"]
    seen = "[photo, image/jpeg, 2 KB]\nIs this cake still available?"
    assert photo_item["content"] == [
        {"type": "input_text", "text": seen},
        {
            "type": "input_image",
            "image_url": f"data:image/jpeg;base64,{base64.b64encode(PHOTO).decode()}",
            "detail": "auto",
        },
    ]
    assert fake_graph.downloads == [media_id]
    assert sent[0]["text"]["body"] == f"You said: {seen}\n[image]"


async def test_a_twilio_pdf_is_read_with_its_caption(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    twilio_url: str,
) -> None:
    await builder_with_channel(db_sessions)
    url = fake_twilio.add_media(twilio_url, ORDER_PDF, "application/pdf")
    form = twilio_media_form(url, "application/pdf", body="My order")
    async with httpx.AsyncClient() as client:
        await post_signed(client, f"{live_receiver}/webhooks/twilio", form)
    sent = await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")

    read = (
        f"[document application/pdf, {len(ORDER_PDF)} bytes]\n"
        "Order form\nSourdough loaf x 2\nPickup on Saturday at 10:00\nMy order"
    )
    assert user_texts(fake_openai.requests[0]) == [read]
    assert sent[0]["Body"] == f"You said: {read}"
    [row] = await media_rows(db_sessions)
    assert (row.kind, row.content_type, row.size_bytes) == (
        "document",
        "application/pdf",
        len(ORDER_PDF),
    )
    assert row.extracted_text == "Order form\nSourdough loaf x 2\nPickup on Saturday at 10:00"


async def test_a_media_url_on_another_host_is_never_fetched(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    """A signed webhook naming another address: the worker does not ask it, and the
    agent is told the photo could not be read (the user still gets an answer)."""
    await builder_with_channel(db_sessions)
    elsewhere = f"http://127.0.0.1:{free_port()}/2010-04-01/Accounts/{ACCOUNT_SID}/Media/ME1"
    form = twilio_media_form(elsewhere, "image/jpeg", body="Look")
    async with httpx.AsyncClient() as client:
        await post_signed(client, f"{live_receiver}/webhooks/twilio", form)
    sent = await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")

    told = "[photo: could not be read (not from the provider's hosts)]\nLook"
    assert user_texts(fake_openai.requests[0]) == [told]
    assert sent[0]["Body"] == f"You said: {told}"
    assert fake_twilio.media_requests == []
    assert await media_rows(db_sessions) == []


async def test_files_that_can_never_be_read_still_get_an_answer(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    twilio_url: str,
) -> None:
    """A voice note deleted at Twilio, and a "photo" whose bytes are a PDF: the agent is
    told what could not be read, never silence, never the fallback."""
    await builder_with_channel(db_sessions)
    deleted = fake_twilio.add_media(twilio_url, VOICE_NOTE, "audio/ogg")
    fake_twilio.media.clear()
    not_a_photo = fake_twilio.add_media(twilio_url, ORDER_PDF, "image/jpeg")
    async with httpx.AsyncClient() as client:
        for url, content_type in ((deleted, "audio/ogg"), (not_a_photo, "image/jpeg")):
            form = twilio_media_form(url, content_type)
            await post_signed(client, f"{live_receiver}/webhooks/twilio", form)
            await at_least(fake_twilio.messages, 1, what="a reply at the fake Twilio")
    sent = await at_least(fake_twilio.messages, 2, what="replies at the fake Twilio")

    told = [
        "[voice note: could not be read (no longer available at the provider)]",
        "[photo: could not be read (not the image/jpeg file it claims to be)]",
    ]
    assert [user_texts(request)[-1] for request in fake_openai.requests] == told
    assert [message["Body"] for message in sent] == [f"You said: {text}" for text in told]
    assert not any(FALLBACK in message["Body"] for message in sent)
    assert fake_openai.transcriptions == []


async def test_a_transcription_that_fails_for_now_is_retried_with_the_turn(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    twilio_url: str,
) -> None:
    """A 503 from the media URL, then one from the transcription API: the turn tries
    again each time; the file, once fetched, is not fetched again."""
    await builder_with_channel(db_sessions)
    fake_twilio.media_failures.append(503)
    fake_openai.transcription_failures.append(503)
    url = fake_twilio.add_media(twilio_url, VOICE_NOTE, "audio/ogg")
    async with httpx.AsyncClient() as client:
        await post_signed(
            client, f"{live_receiver}/webhooks/twilio", twilio_media_form(url, "audio/ogg")
        )
    sent = await at_least(fake_twilio.messages, 1, what="replies at the fake Twilio")

    assert sent[0]["Body"] == "You said: [voice note 0:02] I'd like to book a table for four"
    assert len(fake_twilio.media_requests) == 2  # the 503, then the file
    assert len(fake_openai.transcriptions) == 2  # the 503, then the transcript
    [turn] = await turns(db_sessions)
    assert turn.attempts == 3
    assert len(await media_rows(db_sessions)) == 1
