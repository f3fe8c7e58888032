"""Reading request bodies with a size cap, before anything parses them."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from starlette.exceptions import HTTPException
from starlette.requests import Request

T = TypeVar("T")


async def read_limited_body(request: Request, *, limit: int) -> bytes:
    """The raw body, or 413 as soon as it is known to exceed `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise HTTPException(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise HTTPException(413, f"request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


# How a NUL can reach a parsed body: as the byte, form-encoded, or as a JSON escape.
_NUL_SPELLINGS = (b"\x00", b"%00", b"\\u0000")


def without_nul(value: T, *, raw: bytes) -> T:
    """`value`, parsed from `raw`, with U+0000 removed from every string in it: Postgres
    text and JSONB cannot hold it, and nothing a user means is lost without it. The walk
    is skipped when `raw` cannot spell a NUL (almost always)."""
    if any(spelling in raw for spelling in _NUL_SPELLINGS):
        return cast(T, _strip_nul(value))
    return value


def _strip_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, dict):
        return {_strip_nul(key): _strip_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_strip_nul(item) for item in value)
    return value
