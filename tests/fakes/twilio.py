"""A fake Twilio REST API on loopback for twilio's real `Client` (via `TWILIO_API_BASE_URL`).

Besides sending, it lists the messages an account sent the way Twilio's Messages list
resource does: filtered by `To`, `From` and `DateSent` (whole GMT days only, `DateSent>`
and `DateSent<` inclusive), newest first, in pages of `PageSize` (50 unless asked, at
most 1,000) linked by `next_page_uri`.

Media a user sent (`add_media`) are served as Twilio serves them: the `MediaUrl` asks for
the account's Basic auth and redirects to a CDN on another host (here the same server
as `localhost`), which serves the bytes to anyone holding its link. A message sent with
a `MediaUrl` has it fetched, as Twilio fetches it before sending, and what came back is
recorded in `fetched`.

A message sent by `ContentSid` must name a Content template the account has
(`contents`); its body is the template's with the `ContentVariables` filled, as Twilio
lists it. A free-form message to a user whose 24-hour window is closed
(`closed_windows`) is refused with Twilio's 63016 (Twilio reports it in the message's
status; the fake refuses the request, which the worker records alike: a failed send).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import HeldAnswers

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token"
OTHER_ACCOUNT_SID = "AC" + "1a2b" * 8
"""A second account, for numbers with credentials of their own."""
OTHER_AUTH_TOKEN = "test-other-auth-token"
ACCOUNTS = {ACCOUNT_SID: AUTH_TOKEN, OTHER_ACCOUNT_SID: OTHER_AUTH_TOKEN}
_sids = itertools.count(1)
WINDOW_CLOSED = (
    "Failed to send freeform message because you are outside the allowed window. "
    "If you are using WhatsApp, please use a Message Template."
)
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


@dataclass
class FakeTwilio:
    messages: list[dict[str, str]] = field(default_factory=list)
    """Messages sent, each with the `account_sid` it was sent under (its basic auth); one
    sent by ContentSid with the `rendered_body` Twilio made of it."""
    failures: list[tuple[int, int]] = field(default_factory=list)
    """(HTTP status, Twilio error code) answered to the next sends, in order."""
    typing: list[dict[str, str]] = field(default_factory=list)
    delay_seconds: float = 0.0
    hold_after_accept_seconds: float = 0.0
    """How long a send that Twilio took waits before it is answered (a test may lower it
    meanwhile to release the answers held)."""
    held: HeldAnswers = field(default_factory=HeldAnswers)
    list_failures: list[tuple[int, int]] = field(default_factory=list)
    """(HTTP status, Twilio error code) answered to the next Messages list reads."""
    chaos: Callable[[], tuple[int, int] | None] | None = None
    """Asked on every send: a (status, code) failure to answer, or None."""
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """A media sid's bytes and content type."""
    media_requests: list[dict[str, str]] = field(default_factory=list)
    """Media URL requests: `media_sid` and the `account_sid` of their Basic auth."""
    media_failures: list[int] = field(default_factory=list)
    """HTTP statuses answered to the next media URL requests."""
    fetched: list[dict[str, Any]] = field(default_factory=list)
    """The `MediaUrl`s of messages sent, fetched: `url`, `status`, `content_type`,
    `content`."""

    contents: dict[str, str] = field(default_factory=dict)
    """Content templates by ContentSid: their body, `{{1}}` where a variable goes."""
    closed_windows: set[str] = field(default_factory=set)
    """`To` addresses whose 24-hour window is closed."""

    def reset(self) -> None:
        self.contents.clear()
        self.closed_windows.clear()
        self.messages.clear()
        self.failures.clear()
        self.typing.clear()
        self.list_failures.clear()
        self.delay_seconds = 0.0
        self.hold_after_accept_seconds = 0.0
        self.held = HeldAnswers()
        self.chaos = None
        self.media.clear()
        self.media_requests.clear()
        self.media_failures.clear()
        self.fetched.clear()

    def add_media(self, base_url: str, content: bytes, content_type: str) -> str:
        """A user's file held by Twilio; returns its `MediaUrl` (on `base_url`)."""
        media_sid = f"ME{next(_sids):032d}"
        self.media[media_sid] = (content, content_type)
        message_sid = f"MM{next(_sids):032d}"
        return (
            f"{base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message_sid}/Media/{media_sid}"
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    "/2010-04-01/Accounts/{account_sid}/Messages.json",
                    self._create_message,
                    methods=["POST"],
                ),
                Route(
                    "/2010-04-01/Accounts/{account_sid}/Messages.json",
                    self._list_messages,
                    methods=["GET"],
                ),
                Route("/v2/Indicators/Typing.json", self._typing, methods=["POST"]),
                Route(
                    "/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}",
                    self._media,
                ),
                Route("/cdn/{media_sid}", self._cdn),
            ]
        )

    async def _media(self, request: Request) -> Response:
        """Twilio's media URL: Basic auth of the account, then a 307 to the CDN's host."""
        account_sid = request.path_params["account_sid"]
        media_sid = request.path_params["media_sid"]
        authorization = request.headers.get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        used = base64.b64decode(credentials).decode().partition(":")[0] if credentials else ""
        self.media_requests.append({"media_sid": media_sid, "account_sid": used})
        if not _authenticated(request, account_sid):
            return _error(401, 20003, "Authenticate")
        if self.media_failures:
            return _error(self.media_failures.pop(0), 20500, "fake failure")
        if media_sid not in self.media:
            return _error(404, 20404, "The requested resource was not found")
        cdn = f"http://localhost:{request.url.port}/cdn/{media_sid}"
        return Response(status_code=307, headers={"Location": cdn})

    async def _cdn(self, request: Request) -> Response:
        """The CDN: no auth (the link is the secret), never the API's credentials."""
        if "authorization" in request.headers:
            return Response("credentials sent to the CDN", status_code=400)
        found = self.media.get(request.path_params["media_sid"])
        if found is None:
            return Response(status_code=404)
        return Response(found[0], media_type=found[1])

    async def _fetch(self, url: str) -> None:
        """Twilio takes the message either way; a link it cannot fetch fails it later."""
        async with httpx.AsyncClient(timeout=10) as client:
            try:
                answer = await client.get(url)
            except httpx.HTTPError:
                self.fetched.append({"url": url, "status": 0, "content_type": None, "content": b""})
                return
        self.fetched.append(
            {
                "url": url,
                "status": answer.status_code,
                "content_type": answer.headers.get("content-type"),
                "content": answer.content,
            }
        )

    async def _typing(self, request: Request) -> Response:
        self.typing.append(dict(parse_qsl((await request.body()).decode())))
        return JSONResponse({"success": True})

    async def _create_message(self, request: Request) -> Response:
        """Like Twilio: the basic auth must be the account SID in the path and its token."""
        account_sid = request.path_params["account_sid"]
        if not _authenticated(request, account_sid):
            return _error(401, 20003, "Authenticate")
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        failure = self.chaos() if self.chaos else None
        if failure is None and self.failures:
            failure = self.failures.pop(0)
        if failure is not None:
            return _error(failure[0], failure[1], "fake failure")
        form = dict(parse_qsl((await request.body()).decode()))
        if "ContentSid" in form:
            body = self.contents.get(form["ContentSid"])
            if body is None:
                return _error(400, 21655, "The ContentSid is Invalid")
            values = json.loads(form.get("ContentVariables", "{}"))
            rendered = PLACEHOLDER.sub(lambda found: values.get(found.group(1), ""), body)
        elif form.get("To") in self.closed_windows:
            return _error(400, 63016, WINDOW_CLOSED)
        if "MediaUrl" in form:
            await self._fetch(form["MediaUrl"])
        sid = f"SM{next(_sids):032d}"
        created = datetime.now(UTC).strftime(RFC_2822)
        sent = {**form, "sid": sid, "account_sid": account_sid, "date_created": created}
        if "ContentSid" in form:
            sent["rendered_body"] = rendered
        self.messages.append(sent)
        await self.held.hold(request, sent, lambda: self.hold_after_accept_seconds)
        return JSONResponse({**_message_resource(sent), "status": "queued"}, status_code=201)

    async def _list_messages(self, request: Request) -> Response:
        """The account's messages, filtered and paged as Twilio's Messages list does. The
        fake hands a message to WhatsApp at once, so its `DateSent` is its creation time."""
        account_sid = request.path_params["account_sid"]
        if not _authenticated(request, account_sid):
            return _error(401, 20003, "Authenticate")
        if self.list_failures:
            status, code = self.list_failures.pop(0)
            return _error(status, code, "fake failure")
        query = request.query_params
        try:
            on = _gmt_day(query.get("DateSent"))
            on_or_after = _gmt_day(query.get("DateSent>"))
            on_or_before = _gmt_day(query.get("DateSent<"))
            page_size = min(int(query.get("PageSize", "50")), 1000)
            page = int(query.get("Page", "0"))
        except ValueError as error:
            return _error(400, 20001, f"Invalid parameter: {error}")
        if page_size < 1:
            return _error(400, 20001, "Invalid PageSize")
        matching = [
            message
            for message in reversed(self.messages)
            if message["account_sid"] == account_sid
            and query.get("To", message.get("To")) == message.get("To")
            and query.get("From", message.get("From")) == message.get("From")
            and _within(_sent_day(message), on, on_or_after, on_or_before)
        ]
        after = query.get("PageToken", "").removeprefix("PA")
        start = next((n + 1 for n, m in enumerate(matching) if m["sid"] == after), 0)
        records = matching[start : start + page_size]
        path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        filters = {key: value for key, value in query.items() if key not in PAGING}

        def uri(**paging: Any) -> str:
            return f"{path}?{urlencode({**filters, 'PageSize': page_size, **paging})}"

        more = start + page_size < len(matching)
        return JSONResponse(
            {
                "messages": [_message_resource(message) for message in records],
                "page": page,
                "page_size": page_size,
                "start": start,
                "end": start + len(records) - 1,
                "uri": uri(Page=page),
                "first_page_uri": uri(Page=0),
                "previous_page_uri": uri(Page=page - 1) if page else None,
                "next_page_uri": uri(Page=page + 1, PageToken=f"PA{records[-1]['sid']}")
                if more
                else None,
            }
        )


RFC_2822 = "%a, %d %b %Y %H:%M:%S +0000"
PAGING = {"PageSize", "Page", "PageToken"}


def _authenticated(request: Request, account_sid: str) -> bool:
    token = ACCOUNTS.get(account_sid, "")
    expected = base64.b64encode(f"{account_sid}:{token}".encode()).decode()
    return bool(token) and request.headers.get("authorization") == f"Basic {expected}"


def _gmt_day(value: str | None) -> date | None:
    """A `DateSent` filter: Twilio documents `YYYY-MM-DD` in GMT; a time after the date
    (twilio-python sends one for a datetime) does not narrow it further."""
    if value is None:
        return None
    return date.fromisoformat(value[:10])


def _sent_day(message: dict[str, str]) -> date:
    return parsedate_to_datetime(message["date_created"]).date()


def _within(day: date, on: date | None, after: date | None, before: date | None) -> bool:
    return (
        (on is None or day == on)
        and (after is None or day >= after)
        and (before is None or day <= before)
    )


def _message_resource(message: dict[str, str]) -> dict[str, Any]:
    sid, account_sid = message["sid"], message["account_sid"]
    return {
        "sid": sid,
        "account_sid": account_sid,
        "status": "sent",
        "to": message.get("To"),
        "from": message.get("From"),
        "body": message.get("Body", message.get("rendered_body", "")),
        "num_media": "1" if "MediaUrl" in message else "0",
        "date_created": message["date_created"],
        "date_sent": message["date_created"],
        "date_updated": message["date_created"],
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
    }


def _error(status: int, code: int, message: str) -> Response:
    body = {"code": code, "message": message, "more_info": "", "status": status}
    return JSONResponse(body, status_code=status)
