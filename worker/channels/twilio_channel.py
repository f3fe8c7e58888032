"""Replies through Twilio's WhatsApp API with twilio's own async `Client`; voice notes as
a `MediaUrl` Twilio fetches from the receiver (a signed link that expires)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from db.media_links import MediaLinks
from db.offered_options import OfferedOptions, numbered, numbered_length
from db.templates import FilledTemplate
from worker.channels.base import PermanentSendError, SentMessage, TransientSendError, VoiceNote

# Twilio rejects WhatsApp bodies over 1,600 characters (error 21617).
TWILIO_MAX_BODY = 1600
# The Messages list's largest page: one user's messages of a day or two fit in one.
LIST_PAGE_SIZE = 1000
# Twilio's states that are ours too; the rest (accepted, scheduled, queued, sending)
# mean it holds the message and has not handed it on yet.
SAME_STATUSES = {"sent", "delivered", "read", "undelivered", "failed"}


class TwilioHttpClient(AsyncTwilioHttpClient):
    """twilio's pooled aiohttp client with a request timeout and an optional API host.

    `api_base_url` sends the very same requests to another host (an egress proxy, or a
    fake Twilio on loopback in tests), since twilio's `Client` has no base-URL option.
    """

    def __init__(self, *, timeout: float, api_base_url: str | None = None) -> None:
        super().__init__(timeout=timeout)
        self._api_base_url = api_base_url

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - twilio's HttpClient signature
        allow_redirects: bool = False,
    ) -> Response:
        if self._api_base_url:
            parts = urlsplit(url)
            url = self._api_base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        return await super().request(
            method, url, params, data, headers, auth, timeout or self.timeout, allow_redirects
        )


class TwilioChannel:
    provider = "twilio"
    max_message_length = TWILIO_MAX_BODY
    status_wait_seconds = 0.0  # its statuses do not carry our id: its Messages list tells

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        timeout: float,
        api_base_url: str | None = None,
        status_callback: str | None = None,
        typing_indicator: bool = False,
        media_links: MediaLinks | None = None,
    ) -> None:
        self._http = TwilioHttpClient(timeout=timeout, api_base_url=api_base_url)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._status_callback = status_callback
        self._typing_indicator = typing_indicator
        self._media_links = media_links
        self.sends_voice = media_links is not None

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
        """Send `text`; `options` follow it numbered (WhatsApp buttons need a template
        through Twilio), and a user's "2" is read as the second. A `voice` note goes
        alone, as a link Twilio fetches it from (WhatsApp audio carries no caption). A
        `template` goes by its ContentSid, its variables as `ContentVariables` JSON."""
        message_options: dict[str, Any] = {"from_": sender, "to": recipient}
        if template is not None:
            if template.content_sid is None:
                raise PermanentSendError(f"template {template.name!r} has no Twilio ContentSid")
            message_options["content_sid"] = template.content_sid
            if template.variables:
                message_options["content_variables"] = json.dumps(dict(template.variables))
        elif voice is not None:
            if self._media_links is None:
                raise PermanentSendError("no PUBLIC_BASE_URL and MEDIA_LINK_SECRET to link to")
            message_options["media_url"] = [self._media_links.url(voice.media_id, now=time.time())]
        else:
            message_options["body"] = numbered(text, options) if options is not None else text
        if self._status_callback:
            message_options["status_callback"] = self._status_callback
        async with _classified_errors():
            message = await self._client.messages.create_async(**message_options)
        return SentMessage(provider_message_id=str(message.sid), status=str(message.status))

    def options_text_length(self, options: OfferedOptions) -> int:
        return TWILIO_MAX_BODY - numbered_length(options)

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
        """From Twilio's Messages list. It filters `DateSent` by whole GMT days only, so
        the time and the text are checked here; a voice note is a message with media and
        no text."""
        text = numbered(text, options) if options is not None else text
        async with _classified_errors():
            listed = await self._client.messages.list_async(
                to=recipient,
                from_=sender,
                date_sent_after=f"{since:%Y-%m-%d}",
                page_size=LIST_PAGE_SIZE,
            )
        return [
            SentMessage(
                provider_message_id=str(message.sid),
                status=status if (status := str(message.status)) in SAME_STATUSES else "queued",
            )
            for message in reversed(listed)
            if (_is_voice_note(message) if voice else message.body == text)
            and isinstance(message.date_created, datetime)
            and message.date_created >= since
        ]

    async def show_typing(self, *, sender: str, message_id: str) -> None:
        """Twilio's typing indicator (public beta; it also marks the message read)."""
        if not self._typing_indicator:
            return
        async with _classified_errors():
            await self._client.messaging.v2.typing_indicator.create_async(
                channel="whatsapp", message_id=message_id
            )

    async def aclose(self) -> None:
        await self._http.close()


def _is_voice_note(message: Any) -> bool:
    return not message.body and str(message.num_media or "0") != "0"


@asynccontextmanager
async def _classified_errors() -> AsyncIterator[None]:
    """Twilio's failures as ours: 429/5xx/network are transient, other 4xx permanent. A
    request that got no answer may have been taken; one that never connected was not."""
    try:
        yield
    except TwilioRestException as error:
        reason = f"Twilio HTTP {error.status} (code {error.code}): {error.msg}"
        raise _refusal(error.status, reason) from error
    except TwilioException as error:  # a list page Twilio refused: twilio's Page raises it
        answer = error.args[1] if len(error.args) > 1 else None
        status = answer.status_code if isinstance(answer, Response) else 0
        raise _refusal(status, f"Twilio HTTP {status}: {error.args[0]}") from error
    except aiohttp.ClientConnectorError as error:
        raise TransientSendError(f"Twilio unreachable: {error!r}") from error
    except (aiohttp.ClientError, TimeoutError) as error:
        reason = f"Twilio did not answer: {error!r}"
        raise TransientSendError(reason, may_have_been_sent=True) from error


def _refusal(status: int, reason: str) -> TransientSendError | PermanentSendError:
    if status == 429 or status >= 500:
        return TransientSendError(reason)
    return PermanentSendError(reason)
