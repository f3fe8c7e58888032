"""Speaking a reply: the offline synthesiser's clip is a real voice note, the OpenAI one
refuses what it cannot say, and formatting marks are not read aloud."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI

from tests.fakes.openai import FakeOpenAI
from worker.media.speech import (
    MAX_SPOKEN_CHARACTERS,
    OfflineSynthesiser,
    OpenAISynthesiser,
    SpeechFailed,
    spoken_text,
)
from worker.media.transcription import audio_duration


@pytest.fixture
async def synthesiser(
    fake_openai_server: tuple[FakeOpenAI, str],
) -> AsyncIterator[OpenAISynthesiser]:
    client = AsyncOpenAI(api_key="sk-test", base_url=f"{fake_openai_server[1]}/v1", max_retries=0)
    yield OpenAISynthesiser(client, model="gpt-4o-mini-tts", voice="coral")
    await client.close()


async def test_the_offline_voice_is_a_short_ogg_opus_clip() -> None:
    clip = await OfflineSynthesiser().synthesise("anything at all")
    assert clip.startswith(b"OggS") and b"OpusHead" in clip[:100]
    duration = audio_duration(clip)
    assert duration is not None and 1 < duration < 10


async def test_openai_speech_is_asked_for_opus_and_refused_speech_fails(
    synthesiser: OpenAISynthesiser, fake_openai: FakeOpenAI
) -> None:
    assert (await synthesiser.synthesise("Hello")) == fake_openai.speech
    assert fake_openai.speeches == [
        {"model": "gpt-4o-mini-tts", "voice": "coral", "input": "Hello", "response_format": "opus"}
    ]
    fake_openai.speech_failures.append(500)
    with pytest.raises(SpeechFailed, match="HTTP 500"):
        await synthesiser.synthesise("Hello")
    fake_openai.speech = b"ID3 not an ogg"
    with pytest.raises(SpeechFailed, match="other than OGG"):
        await synthesiser.synthesise("Hello")
    with pytest.raises(SpeechFailed, match="longer than speech takes"):
        await synthesiser.synthesise("a" * (MAX_SPOKEN_CHARACTERS + 1))
    assert len(fake_openai.speeches) == 3


def test_formatting_is_not_read_aloud() -> None:
    text = "**Open** _today_ until `18:00`: see [our hours](https://example.com/hours)"
    assert spoken_text(text) == "Open today until 18:00: see our hours"
