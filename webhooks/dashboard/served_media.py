"""`GET /media/{media_id}`: a file a user sent, for the signed-in admin, or a builder
whose conversation it belongs to; anyone else gets 404, so an id is never confirmed.
There is no public URL: `Guard` refuses a request without a principal.

The bytes are served with the content type the worker checked against them, never
sniffed, under a policy that runs nothing (`default-src 'none'; sandbox`): a document
that is HTML or SVG underneath opens as inert text or is downloaded. Photos, audio and
video show inline; documents download under their own name. Browsers may keep a copy
for this user only and must ask again each time (`private, no-cache`), answered by a
304 when the ETag (the file's SHA-256) still matches, so a revoked token or a signed-out
browser sees nothing more. A single byte range is honoured, so an audio player can seek.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from sqlalchemy import select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from db.media import MediaInfo, media_info
from db.models import AgentSessionRow
from webhooks.dashboard.auth import principal
from webhooks.dashboard.lookups import path_uuid

SHOWN_INLINE = frozenset({"image", "sticker", "audio", "video"})
MEDIA_POLICY = "default-src 'none'; sandbox; frame-ancestors 'none'"
"""Nothing in the file runs or loads, and no page frames it."""
_CONTENT_TYPE = re.compile(r"^[\w.+-]+/[\w.+-]+$")
_RANGE = re.compile(r"^bytes=(?P<first>\d{0,18})-(?P<last>\d{0,18})$")


async def media_file(request: Request) -> Response:
    media_id = path_uuid(request, "media_id")
    async with request.app.state.runtime.sessionmaker() as db:
        info = await media_info(media_id, db=db)
        owner = (
            None
            if info is None
            else await db.scalar(
                select(AgentSessionRow.builder_id).where(AgentSessionRow.id == info.session_id)
            )
        )
        if info is None or owner is None or not principal(request).may_see(owner):
            raise HTTPException(404, "no such media")
        headers = _headers(info)
        if request.headers.get("if-none-match") == headers["ETag"]:
            return Response(status_code=304, headers=headers)
        content = await request.app.state.runtime.media_store.get(media_id, db=db)
    if content is None:
        raise HTTPException(410, "this file is no longer kept")
    wanted = _byte_range(request, len(content), headers["ETag"])
    if wanted is None:
        return Response(content, headers=headers, media_type=_content_type(info))
    first, last = wanted
    if first >= len(content):
        headers["Content-Range"] = f"bytes */{len(content)}"
        return Response(status_code=416, headers=headers)
    headers["Content-Range"] = f"bytes {first}-{last}/{len(content)}"
    return Response(
        content[first : last + 1], status_code=206, headers=headers, media_type=_content_type(info)
    )


def _headers(info: MediaInfo) -> dict[str, str]:
    return {
        "ETag": f'"{info.sha256}"',
        "Cache-Control": "private, no-cache",
        "Content-Security-Policy": MEDIA_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Content-Disposition": disposition(info),
        "Accept-Ranges": "bytes",
    }


def _content_type(info: MediaInfo) -> str:
    """The stored type without its parameters; anything odd is served as bytes."""
    bare = info.content_type.partition(";")[0].strip().lower()
    return bare if _CONTENT_TYPE.match(bare) else "application/octet-stream"


def disposition(info: MediaInfo) -> str:
    """Inline for what a page shows; a download under the sender's file name (an ASCII
    stand-in for browsers that predate `filename*`) for documents."""
    if info.kind in SHOWN_INLINE:
        return "inline"
    name = info.filename or f"{info.kind}-{str(info.id)[:8]}"
    plain = re.sub(r'[^\x20-\x7e]|["\\%;]', "_", name).strip() or "file"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def _byte_range(request: Request, size: int, etag: str) -> tuple[int, int] | None:
    """The one range asked for, as (first, last) byte; None for the whole file (no
    range, several, one that does not parse, or an `If-Range` that no longer holds)."""
    asked = _RANGE.match(request.headers.get("range", "").strip())
    if asked is None or request.headers.get("if-range", etag) != etag:
        return None
    first, last = asked["first"], asked["last"]
    if first:
        end = min(int(last), size - 1) if last else size - 1
        return None if last and int(last) < int(first) else (int(first), end)
    if last and int(last) > 0:
        return max(size - int(last), 0), size - 1
    return None
