"""Spoken replies without OpenAI: with no OPENAI_API_KEY a voice note to a builder with
`voice_replies` is heard by the offline transcriber, answered by the offline model and
spoken by the offline synthesiser's clip, a real voice note Meta gets uploaded. Driven
in-process through the task's plain function on real Postgres and the fake Graph API."""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import update_builder
from db.models import Channel
from tests.factories import FIXTURES, arrive
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.queries import outbound_messages
from worker.conversation.inbound import process_inbound
from worker.process.runtime import Runtime

OFFLINE_VOICE = files("worker.media").joinpath("offline_voice.ogg").read_bytes()
VOICE_NOTE = (FIXTURES / "media" / "voice_note.ogg").read_bytes()


async def test_offline_a_voice_note_is_answered_with_the_offline_voice(
    db_sessions: async_sessionmaker[AsyncSession],
    meta_channel: Channel,
    runtime_with: Callable[..., Runtime],
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    async with db_sessions.begin() as db:
        await update_builder(meta_channel.builder_id, {"voice_replies": True}, db=db)
    runtime = runtime_with(openai_api_key=None)
    media_id = fake_graph.add_media(VOICE_NOTE, "audio/ogg")
    media = [{"kind": "audio", "id": media_id, "content_type": "audio/ogg; codecs=opus"}]
    inbound_id = await arrive(db_sessions, meta_channel, "", media, kind="audio")
    await process_inbound(inbound_id, runtime=runtime)

    [upload] = fake_graph.uploads
    assert upload["file"] == OFFLINE_VOICE
    [sent] = fake_graph.messages
    assert sent["audio"] == {"id": upload["id"], "voice": True}
    [reply] = await outbound_messages(db_sessions)
    assert "offline transcriber" in reply.text  # what the offline model answered, kept as text
    assert (fake_openai.requests, fake_openai.speeches) == ([], [])
