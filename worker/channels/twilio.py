"""Replies through Twilio's WhatsApp API with twilio's own async `Client`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from worker.channels.base import PermanentSendError, SentMessage, TransientSendError

# Twilio rejects WhatsApp bodies over 1,600 characters (error 21617).
TWILIO_MAX_BODY = 1600


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

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        timeout: float,
        api_base_url: str | None = None,
        status_callback: str | None = None,
        typing_indicator: bool = False,
    ) -> None:
        self._http = TwilioHttpClient(timeout=timeout, api_base_url=api_base_url)
        self._client = Client(account_sid, auth_token, http_client=self._http)
        self._status_callback = status_callback
        self._typing_indicator = typing_indicator

    async def send(self, *, sender: str, recipient: str, text: str) -> SentMessage:
        options: dict[str, Any] = {"from_": sender, "to": recipient, "body": text}
        if self._status_callback:
            options["status_callback"] = self._status_callback
        async with _classified_errors():
            message = await self._client.messages.create_async(**options)
        return SentMessage(provider_message_id=str(message.sid), status=str(message.status))

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


@asynccontextmanager
async def _classified_errors() -> AsyncIterator[None]:
    """Twilio's failures as ours: 429/5xx/network are transient, other 4xx permanent."""
    try:
        yield
    except TwilioRestException as error:
        reason = f"Twilio HTTP {error.status} (code {error.code}): {error.msg}"
        if error.status == 429 or error.status >= 500:
            raise TransientSendError(reason) from error
        raise PermanentSendError(reason) from error
    except (aiohttp.ClientError, TimeoutError) as error:
        raise TransientSendError(f"Twilio unreachable: {error!r}") from error
