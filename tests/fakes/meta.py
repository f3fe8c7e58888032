"""A fake Meta Graph API on loopback for our `MetaChannel` (via `META_API_BASE_URL`)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ACCESS_TOKEN = "test-meta-access-token"
APP_SECRET = "test-meta-app-secret"
OTHER_ACCESS_TOKEN = "test-other-meta-access-token"
"""Another app's token and secret, for numbers with credentials of their own."""
OTHER_APP_SECRET = "test-other-meta-app-secret"
ACCESS_TOKENS = {ACCESS_TOKEN, OTHER_ACCESS_TOKEN}
VERIFY_TOKEN = "test-meta-verify-token"
API_VERSION = "v24.0"
_ids = itertools.count(1)


@dataclass
class Failure:
    status: int
    code: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeGraphAPI:
    messages: list[dict[str, Any]] = field(default_factory=list)
    """Messages sent, each with the `phone_number_id` it was sent from and the
    `access_token` it was sent with."""
    typing: list[dict[str, Any]] = field(default_factory=list)
    """Read receipts with typing indicators, in order."""
    failures: list[Failure] = field(default_factory=list)
    delay_seconds: float = 0.0
    chaos: Callable[[], Failure | None] | None = None
    """Asked on every send: a failure to answer, or None."""

    def reset(self) -> None:
        self.messages.clear()
        self.typing.clear()
        self.failures.clear()
        self.delay_seconds = 0.0
        self.chaos = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    f"/{API_VERSION}/{{phone_number_id}}/messages", self._messages, methods=["POST"]
                )
            ]
        )

    async def _messages(self, request: Request) -> Response:
        scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or access_token not in ACCESS_TOKENS:
            return _error(401, 190, "Invalid OAuth access token")
        body = await request.json()
        phone_number_id = request.path_params["phone_number_id"]
        if body.get("status") == "read":
            self.typing.append({**body, "phone_number_id": phone_number_id})
            return JSONResponse({"success": True})
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        failure = self.chaos() if self.chaos else None
        if failure is None and self.failures:
            failure = self.failures.pop(0)
        if failure is not None:
            return _error(failure.status, failure.code, "fake failure", failure.headers)
        wamid = f"wamid.FAKE{next(_ids):012d}"
        sent_by = {"phone_number_id": phone_number_id, "access_token": access_token}
        self.messages.append({**body, **sent_by, "id": wamid})
        recipient = body.get("to") or body.get("recipient")
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": recipient, "wa_id": recipient}],
                "messages": [{"id": wamid}],
            }
        )


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {
        "error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "x"}
    }
    return JSONResponse(body, status_code=status, headers=headers)
