"""Signed, short-lived links to a file we send, for a provider that fetches what it
sends (Twilio's `MediaUrl`): the worker signs a link, the receiver serves the file only
to a link that is ours and not expired. HMAC-SHA256 with MEDIA_LINK_SECRET over the
media id and the expiry time."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass

REPLY_MEDIA_PATH = "/media/replies/"


def link_signature(media_id: uuid.UUID, expires: int, *, secret: str) -> str:
    message = f"{media_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signed_media_url(base_url: str, media_id: uuid.UUID, *, expires: int, secret: str) -> str:
    """`base_url` (PUBLIC_BASE_URL) + the file's path, valid until `expires` (Unix time)."""
    signature = link_signature(media_id, expires, secret=secret)
    return f"{base_url}{REPLY_MEDIA_PATH}{media_id}?expires={expires}&signature={signature}"


def link_is_valid(
    media_id: uuid.UUID, expires: str | None, signature: str | None, *, secret: str, now: float
) -> bool:
    """Whether a link's `expires` and `signature` are ours for `media_id` and not past."""
    if not expires or not signature or not expires.isdigit():
        return False
    expected = link_signature(media_id, int(expires), secret=secret)
    return hmac.compare_digest(expected, signature) and int(expires) > now


@dataclass(frozen=True)
class MediaLinks:
    """How the worker signs links the receiver at `base_url` serves (PUBLIC_BASE_URL,
    MEDIA_LINK_SECRET, MEDIA_LINK_SECONDS)."""

    base_url: str
    secret: str
    seconds: int

    def url(self, media_id: uuid.UUID, *, now: float) -> str:
        expires = int(now) + self.seconds
        return signed_media_url(self.base_url, media_id, expires=expires, secret=self.secret)
