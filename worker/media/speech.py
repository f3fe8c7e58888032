"""Replies spoken: OpenAI's text-to-speech through the real `openai` client
(`TTS_MODEL`, `TTS_VOICE`; any OpenAI-compatible server at `TTS_BASE_URL`), as OGG/Opus,
the format WhatsApp plays as a voice note; or, with no OPENAI_API_KEY, an offline
synthesiser that sends one recorded clip saying it is the offline voice."""

from __future__ import annotations

import logging
import re
from importlib.resources import files
from typing import Protocol

import openai
from openai import AsyncOpenAI

logger = logging.getLogger(__name__)

VOICE_CONTENT_TYPE = "audio/ogg"
"""What WhatsApp needs for a voice note: OGG with the Opus codec."""
MAX_SPOKEN_CHARACTERS = 4096
"""The speech API's longest input; a longer reply goes as text."""
_FORMATTING = re.compile(r"[*_~`#>]+")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]+\)")


class SpeechFailed(Exception):
    """The reply could not be spoken: it goes as text instead."""


class Synthesiser(Protocol):
    async def synthesise(self, text: str) -> bytes:
        """`text` spoken, as OGG/Opus bytes; raises SpeechFailed."""


class OpenAISynthesiser:
    def __init__(self, client: AsyncOpenAI, *, model: str, voice: str) -> None:
        self._client = client
        self._model = model
        self._voice = voice

    async def synthesise(self, text: str) -> bytes:
        """The client retries what is worth retrying (429, 5xx, timeouts); what still fails
        is the text's to carry, so the user is answered now rather than later."""
        if len(text) > MAX_SPOKEN_CHARACTERS:
            raise SpeechFailed(f"{len(text)} characters is longer than speech takes")
        try:
            speech = await self._client.audio.speech.create(
                model=self._model, voice=self._voice, input=text, response_format="opus"
            )
        except openai.APIStatusError as error:
            raise SpeechFailed(f"speech API HTTP {error.status_code}") from error
        except openai.APIConnectionError as error:
            raise SpeechFailed(f"speech API unreachable: {error}") from error
        content = speech.content
        if not content.startswith(b"OggS"):
            raise SpeechFailed("the speech API answered something other than OGG audio")
        return content


class OfflineSynthesiser:
    """No text-to-speech without an API key: every reply is the same short clip (espeak-ng,
    `make_offline_voice.sh`) saying so, so the voice path runs in the demo and tests."""

    def __init__(self) -> None:
        self._clip = files("worker.media").joinpath("offline_voice.ogg").read_bytes()

    async def synthesise(self, text: str) -> bytes:
        return self._clip


def spoken_text(text: str) -> str:
    """What is read aloud: the reply without its formatting marks, links by their label."""
    return _FORMATTING.sub("", _LINK.sub(r"\1", text)).strip()
