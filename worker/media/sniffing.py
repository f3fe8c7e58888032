"""What a file is, told by its first bytes: a provider's content type is checked against
them before a file is kept or shown to the model."""

from __future__ import annotations

# Enough of a file to recognise every format below.
HEAD_BYTES = 16

IMAGE_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp"}
"""The image formats the model accepts as `input_image`, by family."""
TRANSCRIBABLE = {"ogg", "mp4", "mpeg", "wav", "webm", "flac"}
"""The audio formats OpenAI's transcription API accepts."""

_FAMILIES = {
    "image/jpeg": "jpeg",
    "image/jpg": "jpeg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "application/ogg": "ogg",
    "video/ogg": "ogg",
    "audio/mp4": "mp4",
    "audio/m4a": "mp4",
    "audio/x-m4a": "mp4",
    "audio/aac-mp4": "mp4",
    "video/mp4": "mp4",
    "video/quicktime": "mp4",
    "video/3gpp": "mp4",
    "audio/3gpp": "mp4",
    "audio/mpeg": "mpeg",
    "audio/mp3": "mpeg",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/webm": "webm",
    "video/webm": "webm",
    "audio/flac": "flac",
    "application/zip": "zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "zip",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "zip",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "zip",
    "text/plain": "text",
    "text/csv": "text",
    "text/markdown": "text",
    "application/json": "text",
}


def bare_type(content_type: str) -> str:
    """`audio/ogg; codecs=opus` as `audio/ogg`."""
    return content_type.split(";", 1)[0].strip().lower()


def declared_family(content_type: str) -> str | None:
    """The format a content type names; None for one we cannot check."""
    bare = bare_type(content_type)
    family = _FAMILIES.get(bare)
    if family is None and bare.startswith("text/"):
        return "text"
    return family


def detected_family(head: bytes) -> str | None:
    """The format the first bytes of a file show; None when they show none we know."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return "wav"
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"OggS"):
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head.startswith(b"fLaC"):
        return "flac"
    if head.startswith(b"#!AMR"):
        return "amr"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "mpeg"
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return "aac"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head and b"\x00" not in head and _is_text(head):
        return "text"
    return None


def matches(content_type: str, head: bytes) -> bool:
    """Whether the bytes are what the content type says; a type we cannot check matches
    anything but a format we know to be another."""
    declared = declared_family(content_type)
    if declared is None:
        return True
    return detected_family(head) == declared


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A character cut at the end of the head is still text.
        return error.start >= len(head) - 3
    return True
