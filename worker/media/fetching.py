"""Downloading a user's file from its provider: Twilio's media URL (HTTP Basic auth,
following Twilio's redirect to its CDN) or a Meta media id (the Graph API hands out a
short-lived URL, downloaded with the number's token).

Only the provider's own hosts are ever asked: the `*_API_BASE_URL` settings and the
media hosts they redirect to (`TWILIO_MEDIA_HOSTS`, `META_MEDIA_HOSTS`), checked on every
hop, so nothing a webhook says can make the worker fetch another address. Files stream
in with a size cap per kind enforced as they come, and their first bytes must be what
the provider says they are.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import aiohttp

from db.core.settings import Settings
from worker.errors import TransientTurnError
from worker.media.sniffing import HEAD_BYTES, bare_type, detected_family, matches

logger = logging.getLogger(__name__)

MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DOWNLOAD_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)


class MediaUnreadable(Exception):
    """A file that will never be read (deleted at the provider, too large, not what it
    claims, from a host we do not fetch from). The message says why, in a few words the
    agent reads."""


class MediaNotYet(TransientTurnError):
    """A download that failed for now (timeout, 5xx, 429): the turn tries again."""


@dataclass
class Downloaded:
    """A fetched file: its bytes (the one copy in memory every later step shares: the
    store, the transcription upload and the document reader read it without copying),
    checked content type, digest."""

    content: bytes
    content_type: str
    sha256: str


def size_cap(kind: str, settings: Settings) -> int:
    """The largest file of `kind` (`image`, `sticker`, `audio`, `video`, `document`) fetched."""
    if kind in ("image", "sticker"):
        return settings.media_max_image_bytes
    if kind == "audio":
        return settings.media_max_audio_bytes
    if kind == "video":
        return settings.media_max_video_bytes
    return settings.media_max_document_bytes


def kind_of(content_type: str) -> str:
    """A Twilio attachment's kind, from its content type (Meta names the kind itself)."""
    main = bare_type(content_type).split("/", 1)[0]
    return main if main in ("image", "audio", "video") else "document"


class AllowedHosts:
    """Hosts (`*.example.com` for any subdomain) and, for entries with a `:port`, that
    port; an entry without one allows HTTPS on 443 only."""

    def __init__(self, entries: list[str]) -> None:
        self._entries = [entry.strip().lower() for entry in entries if entry.strip()]

    @classmethod
    def for_provider(cls, base_url: str | None, hosts: str) -> AllowedHosts:
        """The API's own host (as configured, port included) and the listed media hosts."""
        entries = hosts.split(",")
        if base_url:
            parts = urlsplit(base_url)
            if parts.hostname:
                entries.append(f"{parts.hostname}:{_port(parts.scheme, parts.port)}")
        return cls(entries)

    def allow(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        host, port = parts.hostname.lower(), _port(parts.scheme, parts.port)
        for entry in self._entries:
            pattern, _, entry_port = entry.rpartition(":") if ":" in entry else (entry, "", "")
            if entry_port:
                if not entry_port.isdigit() or int(entry_port) != port:
                    continue
            elif parts.scheme != "https" or port != 443:
                continue
            if host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:])):
                return True
        return False


def _port(scheme: str, port: int | None) -> int:
    return port if port is not None else (443 if scheme == "https" else 80)


class MediaFetcher:
    """One process's media downloads, over one pooled aiohttp session (made on first
    use, on the worker's loop). aiohttp, not httpx: a Twilio download is two requests
    (the API redirects to its CDN), which cost 1.9 ms of CPU through httpx and 0.28
    through aiohttp."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        twilio_api = settings.twilio_api_base_url or "https://api.twilio.com"
        self._twilio_hosts = AllowedHosts.for_provider(twilio_api, settings.twilio_media_hosts)
        self._meta_hosts = AllowedHosts.for_provider(
            settings.meta_api_base_url, settings.meta_media_hosts
        )

    @property
    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Each step (connecting, each read) within the timeout, as httpx counted it:
            # a 16 MB file may take longer than that as a whole.
            seconds = self._settings.media_timeout_seconds
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(sock_connect=seconds, sock_read=seconds)
            )
        return self._session

    async def twilio(
        self, url: str, *, auth: tuple[str, str] | None, content_type: str, cap: int
    ) -> Downloaded:
        """A Twilio `MediaUrlN`: asked with the account's Basic auth, then wherever
        Twilio redirects (without the auth)."""
        try:
            return await self._download(
                url,
                hosts=self._twilio_hosts,
                auth=auth,
                headers={},
                content_type=content_type,
                cap=cap,
            )
        except _Refused as error:
            if error.status in (404, 410):
                raise MediaUnreadable("no longer available at the provider") from error
            raise MediaUnreadable(f"refused by the provider (HTTP {error.status})") from error

    async def meta(
        self, media_id: str, *, access_token: str, content_type: str, cap: int
    ) -> Downloaded:
        """A Meta media id: its URL from the Graph API, then the file. A URL refused
        (expired: 401, 403 or 404) is asked for again through the id, once."""
        headers = {"Authorization": f"Bearer {access_token}"}

        async def fetched() -> Downloaded:
            url, declared = await self._meta_url(media_id, headers=headers, cap=cap)
            return await self._download(
                url,
                hosts=self._meta_hosts,
                auth=None,
                headers=headers,
                content_type=content_type or declared,
                cap=cap,
            )

        try:
            return await fetched()
        except _Refused as error:
            logger.info("meta media URL refused (%s): asking for a new one", error)
        try:
            return await fetched()
        except _Refused as error:
            raise MediaUnreadable("no longer available at the provider") from error

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _meta_url(
        self, media_id: str, *, headers: Mapping[str, str], cap: int
    ) -> tuple[str, str]:
        """The short-lived download URL of a media id, and the type Meta gives it."""
        if not media_id or not media_id.replace("_", "").isalnum():
            raise MediaUnreadable("no media id")
        settings = self._settings
        url = f"{settings.meta_api_base_url}/{settings.meta_api_version}/{media_id}"
        try:
            async with self._client.get(url, headers=headers) as response:
                status, body = response.status, await response.read()
        except DOWNLOAD_ERRORS as error:
            raise MediaNotYet(f"Meta media lookup failed: {type(error).__name__}") from error
        if status == 429 or status >= 500:
            raise MediaNotYet(f"Meta media lookup: HTTP {status}")
        if status != 200:
            raise MediaUnreadable("no longer available at the provider")
        try:
            found = json.loads(body)
            download_url = str(found["url"])
        except (ValueError, KeyError, TypeError) as error:
            raise MediaUnreadable("the provider gave no download address") from error
        size = found.get("file_size")
        if isinstance(size, int) and size > cap:
            raise MediaUnreadable("too large")
        return download_url, str(found.get("mime_type") or "")

    async def _download(
        self,
        url: str,
        *,
        hosts: AllowedHosts,
        auth: tuple[str, str] | None,
        headers: Mapping[str, str],
        content_type: str,
        cap: int,
    ) -> Downloaded:
        """Stream `url` (and its redirects, each checked against `hosts`) into memory,
        refusing it once it passes `cap` bytes."""
        origin = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            if not hosts.allow(url):
                logger.warning("media URL refused: host %s is not a provider's", _origin(url))
                raise MediaUnreadable("not from the provider's hosts")
            same_origin = _origin(url) == origin
            try:
                async with self._client.get(
                    url,
                    headers=_sent_headers(headers, auth) if same_origin else {},
                    allow_redirects=False,
                ) as response:
                    if response.status in REDIRECTS and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    _check_status(response.status)
                    return await _read(response, content_type=content_type, cap=cap)
            except DOWNLOAD_ERRORS as error:
                raise MediaNotYet(f"media download failed: {type(error).__name__}") from error
        raise MediaUnreadable("redirected too many times")


def _sent_headers(headers: Mapping[str, str], auth: tuple[str, str] | None) -> Mapping[str, str]:
    if auth is None:
        return headers
    return {**headers, "Authorization": aiohttp.encode_basic_auth(*auth)}


class _Refused(MediaUnreadable):
    """A download the host refused (401, 403, 404, 410): deleted, or a Meta URL expired."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _check_status(status: int) -> None:
    if status == 200:
        return
    if status == 429 or status >= 500:
        raise MediaNotYet(f"media download: HTTP {status}")
    if status in (401, 403, 404, 410):
        raise _Refused(status)
    raise MediaUnreadable(f"refused by the provider (HTTP {status})")


async def _read(response: aiohttp.ClientResponse, *, content_type: str, cap: int) -> Downloaded:
    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > cap:
        raise MediaUnreadable("too large")
    # Chunks joined once at the end: the file is whole in memory once (and, for the
    # moment of the join, its chunks beside it), never grown by copying.
    chunks: list[bytes] = []
    size = 0
    digest = hashlib.sha256()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        size += len(chunk)
        if size > cap:
            raise MediaUnreadable("too large")
        chunks.append(chunk)
        digest.update(chunk)
    content = b"".join(chunks)
    del chunks
    if not content:
        raise MediaUnreadable("empty")
    head = content[:HEAD_BYTES]
    declared = bare_type(content_type or response.headers.get("content-type", ""))
    if not declared or declared == "application/octet-stream":
        declared = _type_of(detected_family(head))
    if not matches(declared, head):
        raise MediaUnreadable(f"not the {declared} file it claims to be")
    return Downloaded(content=content, content_type=declared, sha256=digest.hexdigest())


def _type_of(family: str | None) -> str:
    """A content type for a file the provider named none for."""
    return {
        "jpeg": "image/jpeg",
        "png": "image/png",
        "gif": "image/gif",
        "webp": "image/webp",
        "pdf": "application/pdf",
        "ogg": "audio/ogg",
        "mp4": "video/mp4",
        "mpeg": "audio/mpeg",
        "text": "text/plain",
    }.get(family or "", "application/octet-stream")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
