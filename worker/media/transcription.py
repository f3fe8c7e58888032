"""Voice notes and audio in words: OpenAI's transcription API through the real `openai`
client (`TRANSCRIBE_MODEL`, any OpenAI-compatible server at `TRANSCRIBE_BASE_URL`), or,
with no OPENAI_API_KEY, an offline transcriber that says what it was given."""

from __future__ import annotations

import io
import logging
from typing import Protocol

import mutagen
import openai
from openai import AsyncOpenAI

from db.media import readable_size
from worker.errors import TransientTurnError
from worker.media.fetching import MediaUnreadable

logger = logging.getLogger(__name__)

_EXTENSIONS = {
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
    "audio/wav": "wav",
    "audio/webm": "webm",
    "audio/flac": "flac",
}


class Transcriber(Protocol):
    async def transcribe(self, content: bytes, *, content_type: str) -> str:
        """What the audio says. Raises TransientTurnError (try the turn again) or
        MediaUnreadable (this audio will never be heard)."""


class OpenAITranscriber:
    """The upload reads the file's one copy in memory: a `BytesIO` over a `bytes` object
    shares its buffer (CPython copies only on a write), and httpx streams it into the
    multipart body in chunks, seeking back to its start when the client retries."""

    def __init__(self, client: AsyncOpenAI, *, model: str) -> None:
        self._client = client
        self._model = model

    async def transcribe(self, content: bytes, *, content_type: str) -> str:
        name = f"voice.{_EXTENSIONS.get(content_type, 'ogg')}"
        try:
            transcription = await self._client.audio.transcriptions.create(
                model=self._model, file=(name, io.BytesIO(content), content_type)
            )
        except openai.APIStatusError as error:
            if error.status_code in (408, 409, 429) or error.status_code >= 500:
                raise TransientTurnError(f"transcription API {error.status_code}") from error
            logger.warning("transcription refused: HTTP %s", error.status_code)
            raise MediaUnreadable("the speech-to-text service refused it") from error
        except openai.APIConnectionError as error:
            raise TransientTurnError(f"transcription API unreachable: {error}") from error
        return transcription.text.strip()


class OfflineTranscriber:
    """No speech-to-text without an API key: says so, with what it was given."""

    async def transcribe(self, content: bytes, *, content_type: str) -> str:
        return (
            f"(offline transcriber: {content_type}, {readable_size(len(content))}; "
            "set OPENAI_API_KEY to hear what it says)"
        )


def audio_duration(content: bytes) -> float | None:
    """Seconds of audio (OGG/Opus from its last granule position, MP3, M4A, WAV, FLAC…)
    read by mutagen from the headers, without decoding (nor copying: the BytesIO shares
    the bytes); None when it cannot tell."""
    try:
        audio = mutagen.File(io.BytesIO(content))
    except mutagen.MutagenError:
        return None
    length = getattr(getattr(audio, "info", None), "length", None)
    return float(length) if isinstance(length, int | float) and length > 0 else None
