"""Replies through Meta's WhatsApp Cloud API (Graph API `/{phone_number_id}/messages`;
voice notes uploaded to `/{phone_number_id}/media` first and sent by their media id)."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from typing import Any

import httpx

from db.offered_options import OfferedOptions, numbered, numbered_length
from db.templates import FilledTemplate
from worker.channels.base import (
    PermanentSendError,
    SentMessage,
    TransientSendError,
    VoiceNote,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

# WhatsApp rejects text bodies over 4,096 characters.
META_MAX_BODY = 4096
# Interactive messages: body text, reply buttons (up to 3, titles up to 20 characters),
# list rows (up to 10, titles up to 24, descriptions up to 72), the list's button label.
INTERACTIVE_MAX_BODY = 1024
MAX_BUTTONS = 3
BUTTON_TITLE_LENGTH = 20
MAX_ROWS = 10
ROW_TITLE_LENGTH = 24
ROW_DESCRIPTION_LENGTH = 72
LIST_BUTTON_LENGTH = 20
# Rate limits and temporary outages: retrying later succeeds. 130429 throughput,
# 131056 pair rate limit, 131048 spam rate limit, 4/80007 app and account limits,
# 131000/131016 something went wrong / service unavailable, 1/2 API unknown/service.
TRANSIENT_CODES = {1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131056}
# One message per ~6 s to the same user (131056): waiting less only fails again.
PAIR_RATE_LIMIT_SECONDS = 6.0
BUSINESS_SCOPED_USER_ID = re.compile(r"^[A-Z]{2}\.")


class MetaChannel:
    provider = "meta"
    max_message_length = META_MAX_BODY
    sends_voice = True

    def __init__(
        self,
        *,
        access_token: str,
        api_base_url: str,
        api_version: str,
        timeout: float,
        typing_indicator: bool,
        status_wait_seconds: float,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=f"{api_base_url}/{api_version}",
            headers={"Authorization": f"Bearer {access_token}"},
            timeout=timeout,
        )
        self._typing_indicator = typing_indicator
        self.status_wait_seconds = status_wait_seconds

    async def send(
        self,
        *,
        sender: str,
        recipient: str,
        text: str,
        outbound_id: uuid.UUID | None = None,
        options: OfferedOptions | None = None,
        voice: VoiceNote | None = None,
        template: FilledTemplate | None = None,
    ) -> SentMessage:
        """Send a text message from phone number id `sender` to a number or user id;
        with `options`, reply buttons or a list (`interactive_message`), or the options
        numbered under the text where those cannot show them; with `voice`, that voice
        note (uploaded first: a media id is Meta's only way to take our bytes). `outbound_id`
        goes in `biz_opaque_callback_data` (up to 512 characters), which Meta hands back
        in the message's `sent`, `delivered` and `read` statuses. A `template` goes as
        `type: template`, by name and language, its variables as body parameters."""
        interactive = interactive_message(text, options) if options is not None else None
        content: dict[str, Any]
        if template is not None:
            content = {"type": "template", "template": template_message(template)}
        elif voice is not None:
            media_id = await self._upload(sender, voice)
            content = {"type": "audio", "audio": {"id": media_id, "voice": True}}
        elif interactive is not None:
            content = {"type": "interactive", "interactive": interactive}
        else:
            shown = numbered(text, options) if options is not None else text
            content = {"type": "text", "text": {"preview_url": False, "body": shown}}
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **_addressed_to(recipient),
            **content,
        }
        if outbound_id is not None:
            body["biz_opaque_callback_data"] = str(outbound_id)
        reply = await self._post(sender, body)
        messages = reply.get("messages")
        if not (isinstance(messages, list) and messages and isinstance(messages[0], dict)):
            raise PermanentSendError(f"Meta accepted the message but returned no id: {reply}")
        return SentMessage(provider_message_id=str(messages[0].get("id")), status="sent")

    def options_text_length(self, options: OfferedOptions) -> int:
        if interactive_message("…", options) is not None:
            return INTERACTIVE_MAX_BODY
        return META_MAX_BODY - numbered_length(options)

    async def find_sent(
        self,
        *,
        sender: str,
        recipient: str,
        text: str,
        since: datetime,
        options: OfferedOptions | None = None,
        voice: bool = False,
    ) -> list[SentMessage]:
        """The Graph API lists no sent messages: the statuses that carry our outbound id
        back tell instead (`status_wait_seconds`)."""
        return []

    async def show_typing(self, *, sender: str, message_id: str) -> None:
        """Mark the user's message read and show "typing…" (Meta clears it after 25 s)."""
        if not self._typing_indicator:
            return
        await self._post(
            sender,
            {
                "messaging_product": "whatsapp",
                "status": "read",
                "message_id": message_id,
                "typing_indicator": {"type": "text"},
            },
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _upload(self, phone_number_id: str, voice: VoiceNote) -> str:
        """Meta's media id for `voice`, uploaded as a file of `phone_number_id`. An upload
        that got no answer sent no message: it is retried like a refusal."""
        form = {"messaging_product": "whatsapp", "type": voice.content_type}
        upload = {"file": ("reply.ogg", voice.content, voice.content_type)}
        try:
            response = await self._client.post(f"/{phone_number_id}/media", data=form, files=upload)
        except httpx.TransportError as error:
            raise TransientSendError(f"Meta media upload failed: {error!r}") from error
        payload = _json(response)
        if not response.is_success:
            raise _classified(response, payload)
        media_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise PermanentSendError(f"Meta took the upload but returned no media id: {payload}")
        return media_id

    async def _post(self, phone_number_id: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post(f"/{phone_number_id}/messages", json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise TransientSendError(f"Meta unreachable: {error!r}") from error
        except httpx.TransportError as error:  # sent, and no answer came back
            reason = f"Meta did not answer: {error!r}"
            raise TransientSendError(reason, may_have_been_sent=True) from error
        payload = _json(response)
        if response.is_success:
            return payload if isinstance(payload, dict) else {}
        raise _classified(response, payload)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def template_message(template: FilledTemplate) -> dict[str, Any]:
    """The Cloud API's `template` object: name, language, and the variables as the body's
    text parameters in order (a named one says its name)."""
    message: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    if template.variables:
        parameters = [
            {"type": "text", "text": value}
            if name.isdigit()
            else {"type": "text", "parameter_name": name, "text": value}
            for name, value in template.variables
        ]
        message["components"] = [{"type": "body", "parameters": parameters}]
    return message


def interactive_message(text: str, options: OfferedOptions) -> dict[str, Any] | None:
    """The `interactive` object offering `options` under `text`: reply buttons when up to
    three short titles fit, else a list, its long titles cut with the whole title as the
    row's description; None when they do not fit one (more than ten, or titles that
    would read the same once cut), and the options go as numbered text instead."""
    titles = options.titles
    body = {"text": text}
    if len(titles) <= MAX_BUTTONS and all(len(t) <= BUTTON_TITLE_LENGTH for t in titles):
        buttons = [
            {"type": "reply", "reply": {"id": str(number), "title": title}}
            for number, title in enumerate(titles, 1)
        ]
        return {"type": "button", "body": body, "action": {"buttons": buttons}}
    rows = [_row(number, title) for number, title in enumerate(titles, 1)]
    if len(rows) > MAX_ROWS or len({row["title"] for row in rows}) < len(rows):
        return None
    action = {
        "button": _shortened(options.list_button, LIST_BUTTON_LENGTH),
        "sections": [{"rows": rows}],
    }
    return {"type": "list", "body": body, "action": action}


def _row(number: int, title: str) -> dict[str, str]:
    row = {"id": str(number), "title": _shortened(title, ROW_TITLE_LENGTH)}
    if row["title"] != title:
        row["description"] = _shortened(title, ROW_DESCRIPTION_LENGTH)
    return row


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _addressed_to(recipient: str) -> dict[str, str]:
    """A phone number goes in `to`; a business-scoped user id (`US.1349…`) in `recipient`."""
    if BUSINESS_SCOPED_USER_ID.match(recipient):
        return {"recipient": recipient}
    return {"to": recipient}


def _classified(response: httpx.Response, payload: Any) -> TransientSendError | PermanentSendError:
    """Meta's error, by HTTP status and Graph error code: retry, or give up with the reason."""
    error = payload.get("error") if isinstance(payload, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    message = details or error.get("message") or response.text[:200]
    reason = f"Meta HTTP {response.status_code} (code {code}): {message}"
    if response.status_code == 429 or response.status_code >= 500 or code in TRANSIENT_CODES:
        return TransientSendError(reason, retry_after=_retry_after(response, code))
    return PermanentSendError(reason)


def _retry_after(response: httpx.Response, code: Any) -> float | None:
    hinted = retry_after_seconds(response.headers.get("retry-after"))
    if hinted is not None:
        return hinted
    return PAIR_RATE_LIMIT_SECONDS if code == 131056 else None
