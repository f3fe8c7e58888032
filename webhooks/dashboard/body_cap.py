"""Every dashboard and API request body is read whole, up to `MAX_BODY_BYTES`, before
authentication, CSRF checks or parsing see it: no form, JSON or upload can make the
receiver hold more. One route takes a file, a builder's document upload: multipart is
accepted there only, up to `MAX_DOCUMENT_BYTES`, and refused unread everywhere else.

The provider webhooks keep their own caps (`webhooks.providers.request_body`): this wraps only the
dashboard's routes.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webhooks.providers.request_body import read_limited_body

MAX_BODY_BYTES = 64 * 1024
MAX_DOCUMENT_BYTES = 5 * 1024 * 1024
"""A document upload: a few hundred pages of text, or a PDF of a handful of pages."""
DOCUMENT_UPLOAD_PATH = "/builders/{builder_id}/documents"
_DOCUMENT_UPLOAD = re.compile(r"^/builders/[^/]+/documents$")


class BodyCap:
    """ASGI middleware: refuse a body over the cap (413) or multipart (415) with the
    response `deny` makes; hand the app the body it read."""

    def __init__(
        self, app: ASGIApp, *, deny: Callable[[HTTPConnection, HTTPException], Response]
    ) -> None:
        self.app = app
        self.deny = deny

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            limit = MAX_BODY_BYTES
            if request.headers.get("content-type", "").lower().startswith("multipart/"):
                if not _takes_files(scope):
                    raise HTTPException(
                        415, "multipart bodies are accepted only by the document upload"
                    )
                limit = MAX_DOCUMENT_BYTES
            body = await read_limited_body(request, limit=limit)
        except ClientDisconnect:
            return  # gone, or closed for sending too slowly: nobody to answer
        except HTTPException as refused:
            # The server discards whatever of the body still arrives (within its read
            # deadline, `webhooks.read_deadline`), so the client reads this answer.
            await self.deny(request, refused)(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)


def _takes_files(scope: Scope) -> bool:
    return scope["method"] == "POST" and bool(_DOCUMENT_UPLOAD.match(scope["path"]))


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` that first hands over `body` whole, then what the server sends next (a
    disconnect, which streaming responses listen for)."""
    handed_over = False

    async def replay() -> Message:
        nonlocal handed_over
        if handed_over:
            return await receive()
        handed_over = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
