"""A fake Twilio REST API on loopback for twilio's real `Client` (via `TWILIO_API_BASE_URL`)."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"
OTHER_ACCOUNT_SID = "AC" + "1a2b" * 8
"""A second account, for numbers with credentials of their own."""
OTHER_AUTH_TOKEN = "test-other-auth-token"
ACCOUNTS = {ACCOUNT_SID: AUTH_TOKEN, OTHER_ACCOUNT_SID: OTHER_AUTH_TOKEN}
_sids = itertools.count(1)


@dataclass
class FakeTwilio:
    messages: list[dict[str, str]] = field(default_factory=list)
    """Messages sent, each with the `account_sid` it was sent under (its basic auth)."""
    failures: list[tuple[int, int]] = field(default_factory=list)
    """(HTTP status, Twilio error code) answered to the next sends, in order."""
    typing: list[dict[str, str]] = field(default_factory=list)
    delay_seconds: float = 0.0
    chaos: Callable[[], tuple[int, int] | None] | None = None
    """Asked on every send: a (status, code) failure to answer, or None."""

    def reset(self) -> None:
        self.messages.clear()
        self.failures.clear()
        self.typing.clear()
        self.delay_seconds = 0.0
        self.chaos = None

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/2010-04-01/Accounts/{account_sid}/Messages.json",
                    self._create_message,
                    methods=["POST"],
                ),
                Route("/v2/Indicators/Typing.json", self._typing, methods=["POST"]),
            ]
        )

    async def _typing(self, request: Request) -> Response:
        self.typing.append(dict(parse_qsl((await request.body()).decode())))
        return JSONResponse({"success": True})

    async def _create_message(self, request: Request) -> Response:
        """Like Twilio: the basic auth must be the account SID in the path and its token."""
        account_sid = request.path_params["account_sid"]
        token = ACCOUNTS.get(account_sid, "")
        expected = base64.b64encode(f"{account_sid}:{token}".encode()).decode()
        if not token or request.headers.get("authorization") != f"Basic {expected}":
            return _error(401, 20003, "Authenticate")
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        failure = self.chaos() if self.chaos else None
        if failure is None and self.failures:
            failure = self.failures.pop(0)
        if failure is not None:
            return _error(failure[0], failure[1], "fake failure")
        form = dict(parse_qsl((await request.body()).decode()))
        sid = f"SM{next(_sids):032d}"
        self.messages.append({**form, "sid": sid, "account_sid": account_sid})
        return JSONResponse(_message_resource(sid, account_sid, form), status_code=201)


def _message_resource(sid: str, account_sid: str, form: dict[str, Any]) -> dict[str, Any]:
    return {
        "sid": sid,
        "account_sid": account_sid,
        "status": "queued",
        "to": form.get("To"),
        "from": form.get("From"),
        "body": form.get("Body"),
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
    }


def _error(status: int, code: int, message: str) -> Response:
    body = {"code": code, "message": message, "more_info": "", "status": status}
    return JSONResponse(body, status_code=status)
