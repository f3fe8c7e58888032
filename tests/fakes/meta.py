"""A fake Meta Graph API on loopback for our `MetaChannel` (via `META_API_BASE_URL`).

Like Meta, once told where (`status_webhooks_to`), it posts a signed `sent` and then a
`delivered` status notification for every message it took, carrying back the message's
`biz_opaque_callback_data`, and retries a notification the receiver does not answer
with 200.

Media a user sent (`add_media`) are served as the Graph API serves them: `GET
/{version}/{media-id}` with the token answers a short-lived `url`, whose download also
needs the token; `expire_once` makes a media id's first download answer 404, as a URL
past its five minutes does. Media we send are uploaded as Meta takes them (`POST
/{version}/{phone-number-id}/media`, multipart `file`, `type`, `messaging_product`),
recorded in `uploads`, and answered with a media id.

The business account's templates (`templates`, Meta's listing shape) are listed by `GET
/{version}/{waba-id}/message_templates` in pages linked by `paging.next`; a `type:
template` send must name one that is approved in its language (else 132001), and a
free-form send to a user whose 24-hour window is closed (`closed_windows`) is refused
with Meta's 131047, as Meta refuses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from db.core.meta_signature import meta_signature
from tests.fakes.server import HeldAnswers

ACCESS_TOKEN = "test-meta-access-token"
APP_SECRET = "test-meta-app-secret"
OTHER_ACCESS_TOKEN = "test-other-meta-access-token"
"""Another app's token and secret, for numbers with credentials of their own."""
OTHER_APP_SECRET = "test-other-meta-app-secret"
ACCESS_TOKENS = {ACCESS_TOKEN, OTHER_ACCESS_TOKEN}
APP_SECRET_OF = {ACCESS_TOKEN: APP_SECRET, OTHER_ACCESS_TOKEN: OTHER_APP_SECRET}
"""The app each token belongs to, whose secret signs the notifications of its sends."""
VERIFY_TOKEN = "test-meta-verify-token"
BUSINESS_ACCOUNT_ID = "104996207751234"
WINDOW_CLOSED_DETAILS = (
    "Message failed to send because more than 24 hours have passed since the customer "
    "last replied to this number."
)
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
    hold_after_accept_seconds: float = 0.0
    """How long a send that Meta took waits before it is answered (a test may lower it
    meanwhile to release the answers held)."""
    held: HeldAnswers = field(default_factory=HeldAnswers)
    chaos: Callable[[], Failure | None] | None = None
    """Asked on every send: a failure to answer, or None."""
    status_webhooks_to: str | None = None
    """The receiver (base URL) Meta posts delivery statuses to; None posts none."""
    status_delay_seconds: float = 0.0
    """How long after taking a message its first status is posted."""
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    """A media id's bytes and content type."""
    media_lookups: list[str] = field(default_factory=list)
    """Media ids asked for by `GET /{version}/{media-id}`, in order."""
    downloads: list[str] = field(default_factory=list)
    """Media ids downloaded (or tried), in order."""
    expire_once: set[str] = field(default_factory=set)
    """Media ids whose next download answers 404 (an expired URL)."""
    uploads: list[dict[str, Any]] = field(default_factory=list)
    """Media uploaded: the form's fields, the file's `filename`, `content_type` and
    bytes (`file`), the `phone_number_id` and `access_token`, and the `id` answered."""
    templates: list[dict[str, Any]] = field(default_factory=list)
    """The business account's templates as the Graph API lists them (`name`,
    `language`, `status`, `category`, `components`, `id`)."""
    template_pages: list[dict[str, str]] = field(default_factory=list)
    """Each listing request's query parameters, in order."""
    closed_windows: set[str] = field(default_factory=set)
    """Users (`to` or `recipient`) whose 24-hour window is closed."""
    _posting: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def reset(self) -> None:
        self.messages.clear()
        self.typing.clear()
        self.failures.clear()
        self.delay_seconds = 0.0
        self.hold_after_accept_seconds = 0.0
        self.held = HeldAnswers()
        self.chaos = None
        self.status_webhooks_to = None
        self.status_delay_seconds = 0.0
        self.media.clear()
        self.media_lookups.clear()
        self.downloads.clear()
        self.expire_once.clear()
        self.uploads.clear()
        self.templates.clear()
        self.template_pages.clear()
        self.closed_windows.clear()

    def add_media(self, content: bytes, content_type: str, media_id: str | None = None) -> str:
        """A user's file held by Meta; returns its media id."""
        media_id = media_id or f"{next(_ids):016d}"
        self.media[media_id] = (content, content_type)
        return media_id

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(
                    f"/{API_VERSION}/{{phone_number_id}}/messages", self._messages, methods=["POST"]
                ),
                Route(f"/{API_VERSION}/{{phone_number_id}}/media", self._upload, methods=["POST"]),
                Route(f"/{API_VERSION}/{{waba_id}}/message_templates", self._templates),
                Route(f"/{API_VERSION}/{{media_id}}", self._media_url),
                Route("/whatsapp_business/attachments/{media_id}", self._download),
            ]
        )

    async def _upload(self, request: Request) -> Response:
        """Like Meta: `messaging_product` must be whatsapp and `file` a file of `type`."""
        if not _token_ok(request):
            return _error(401, 190, "Invalid OAuth access token")
        async with request.form() as form:
            upload = form.get("file")
            fields = {key: value for key, value in form.items() if isinstance(value, str)}
            if isinstance(upload, str) or upload is None:
                return _error(400, 100, "Param file must be a file")
            if fields.get("messaging_product") != "whatsapp" or not fields.get("type"):
                return _error(400, 100, "messaging_product and type are required")
            content = await upload.read()
            media_id = f"{next(_ids):016d}"
            self.uploads.append(
                {
                    **fields,
                    "filename": upload.filename,
                    "content_type": upload.content_type,
                    "file": content,
                    "phone_number_id": request.path_params["phone_number_id"],
                    "access_token": request.headers["authorization"].partition(" ")[2],
                    "id": media_id,
                }
            )
        self.media[media_id] = (content, fields["type"])
        return JSONResponse({"id": media_id})

    async def _templates(self, request: Request) -> Response:
        """The account's templates, `limit` a page, the next page after the `after` cursor."""
        if not _token_ok(request):
            return _error(401, 190, "Invalid OAuth access token")
        if request.path_params["waba_id"] != BUSINESS_ACCOUNT_ID:
            return _error(400, 100, "Unsupported get request. Object does not exist")
        query = dict(request.query_params)
        self.template_pages.append(query)
        fields = query.get("fields", "name").split(",")
        limit = int(query.get("limit", "25"))
        start = int(query.get("after", "0"))
        page = self.templates[start : start + limit]
        body: dict[str, Any] = {
            "data": [{key: each[key] for key in [*fields, "id"] if key in each} for each in page]
        }
        end = start + len(page)
        body["paging"] = {"cursors": {"before": str(start), "after": str(end)}}
        if end < len(self.templates):
            body["paging"]["next"] = str(request.url.include_query_params(after=str(end)))
        return JSONResponse(body)

    def _refusal(self, body: dict[str, Any]) -> Response | None:
        """Meta's answer to a send it refuses for its content: a free-form message outside
        the 24-hour window, a template the account has not approved in that language."""
        recipient = body.get("to") or body.get("recipient")
        if body.get("type") == "template":
            template = body.get("template") or {}
            language = (template.get("language") or {}).get("code")
            approved = any(
                each["name"] == template.get("name")
                and each["language"] == language
                and each["status"] == "APPROVED"
                for each in self.templates
            )
            if not approved:
                return _error(
                    404,
                    132001,
                    "Template name does not exist in the translation",
                    details=(
                        f"template name ({template.get('name')}) does not exist in {language}"
                    ),
                )
            return None
        if recipient in self.closed_windows:
            return _error(400, 131047, "Re-engagement message", details=WINDOW_CLOSED_DETAILS)
        return None

    async def _media_url(self, request: Request) -> Response:
        if not _token_ok(request):
            return _error(401, 190, "Invalid OAuth access token")
        media_id = request.path_params["media_id"]
        self.media_lookups.append(media_id)
        found = self.media.get(media_id)
        if found is None:
            return _error(400, 100, "Unsupported get request. Object does not exist")
        content, content_type = found
        download = f"{request.base_url}whatsapp_business/attachments/{media_id}"
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": f"{download}?ext={int(time.time())}",
                "mime_type": content_type,
                "sha256": hashlib.sha256(content).hexdigest(),
                "file_size": len(content),
                "id": media_id,
            }
        )

    async def _download(self, request: Request) -> Response:
        if not _token_ok(request):
            return Response(status_code=401)
        media_id = request.path_params["media_id"]
        self.downloads.append(media_id)
        if media_id in self.expire_once:
            self.expire_once.discard(media_id)
            return Response(status_code=404)
        found = self.media.get(media_id)
        if found is None:
            return Response(status_code=404)
        return Response(found[0], media_type=found[1])

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
        refused = self._refusal(body)
        if refused is not None:
            return refused
        wamid = f"wamid.FAKE{next(_ids):012d}"
        sent_by = {"phone_number_id": phone_number_id, "access_token": access_token}
        sent = {**body, **sent_by, "id": wamid}
        self.messages.append(sent)
        recipient = body.get("to") or body.get("recipient")
        if self.status_webhooks_to is not None:
            posting = asyncio.create_task(self._post_statuses(self.status_webhooks_to, sent))
            self._posting.add(posting)
            posting.add_done_callback(self._posting.discard)
        await self.held.hold(request, sent, lambda: self.hold_after_accept_seconds)
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": recipient, "wa_id": recipient}],
                "messages": [{"id": wamid}],
            }
        )

    async def _post_statuses(self, receiver: str, sent: dict[str, Any]) -> None:
        """`sent`, then `delivered`, each retried until the receiver answers 200."""
        await asyncio.sleep(self.status_delay_seconds)
        secret = APP_SECRET_OF[sent["access_token"]]
        async with httpx.AsyncClient(timeout=10) as client:
            for state in ("sent", "delivered"):
                body = json.dumps(_status_notification(sent, state)).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": meta_signature(body, secret),
                }
                for attempt in range(STATUS_ATTEMPTS):
                    try:
                        answer = await client.post(
                            f"{receiver}/webhooks/meta", content=body, headers=headers
                        )
                        if answer.status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2 * 2**attempt)


STATUS_ATTEMPTS = 8


def _status_notification(sent: dict[str, Any], state: str) -> dict[str, Any]:
    """A status notification in Meta's envelope (the shape of the captured fixtures)."""
    recipient = sent.get("to") or sent.get("recipient")
    status: dict[str, Any] = {
        "id": sent["id"],
        "status": state,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
        "conversation": {"id": "fake-conversation", "origin": {"type": "service"}},
        "pricing": {"billable": True, "pricing_model": "CBP", "category": "service"},
    }
    if "biz_opaque_callback_data" in sent:
        status["biz_opaque_callback_data"] = sent["biz_opaque_callback_data"]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550783881",
            "phone_number_id": sent["phone_number_id"],
        },
        "statuses": [status],
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def _token_ok(request: Request) -> bool:
    scheme, _, access_token = request.headers.get("authorization", "").partition(" ")
    return scheme == "Bearer" and access_token in ACCESS_TOKENS


def _error(
    status: int,
    code: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    details: str | None = None,
) -> Response:
    error: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "x",
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return JSONResponse({"error": error}, status_code=status, headers=headers)
