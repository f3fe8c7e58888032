"""The media rows' load: which messages carry a file (20% voice notes, 10% photos, the
rest text) and the 16 MB voice notes that stream through a worker whose memory is
watched. The files are the test fixtures' real bytes, served by the fake Twilio."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from tests.factories import FIXTURES

MEDIA = FIXTURES / "media"
VOICE_NOTE = (MEDIA / "voice_note.ogg").read_bytes()
PHOTO = (MEDIA / "photo.jpg").read_bytes()
TRANSCRIPTION_DELAY_SECONDS = 0.3
LARGE_BYTES = 16 * 1024 * 1024
"""WhatsApp's largest audio, and the worker's default MEDIA_MAX_AUDIO_BYTES."""


def large_voice_note() -> bytes:
    """A real OGG/Opus file of (nearly) 16 MB: the voice note chained again and again,
    as Ogg allows, so its type checks and its length reads like any other's."""
    return VOICE_NOTE * (LARGE_BYTES // len(VOICE_NOTE))


@dataclass(frozen=True)
class Attached:
    url: str
    content_type: str


def mixed(voice_note: Attached, photo: Attached) -> Iterator[Attached | None]:
    """What each next message carries: of every ten, two voice notes and one photo."""
    text: list[Attached | None] = [None] * 7
    return itertools.cycle([voice_note, *text[:4], photo, *text[4:], voice_note])
