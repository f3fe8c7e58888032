"""Replies through Meta's WhatsApp Cloud API (Graph API `/{phone_number_id}/messages`)."""

from __future__ import annotations

import logging
import re
import uuid
from datetime import datetime
from typing import Any

import httpx

from worker.channels.base import (
    PermanentSendError,
    SentMessage,
    TransientSendError,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

# WhatsApp rejects text bodies over 4,096 characters.
META_MAX_BODY = 4096
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
        self, *, sender: str, recipient: str, text: str, outbound_id: uuid.UUID | None = None
    ) -> SentMessage:
        """Send a text message from phone number id `sender` to a number or user id.
        `outbound_id` goes in `biz_opaque_callback_data` (up to 512 characters), which
        Meta hands back in the message's `sent`, `delivered` and `read` statuses."""
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **_addressed_to(recipient),
            "type": "text",
            "text": {"preview_url": False, "body": text},
        }
        if outbound_id is not None:
            body["biz_opaque_callback_data"] = str(outbound_id)
        reply = await self._post(sender, body)
        messages = reply.get("messages")
        if not (isinstance(messages, list) and messages and isinstance(messages[0], dict)):
            raise PermanentSendError(f"Meta accepted the message but returned no id: {reply}")
        return SentMessage(provider_message_id=str(messages[0].get("id")), status="sent")

    async def find_sent(
        self, *, sender: str, recipient: str, text: str, since: datetime
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

    async def _post(self, phone_number_id: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.post(f"/{phone_number_id}/messages", json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise TransientSendError(f"Meta unreachable: {error!r}") from error
        except httpx.TransportError as error:  # sent, and no answer came back
            reason = f"Meta did not answer: {error!r}"
            raise TransientSendError(reason, may_have_been_sent=True) from error
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.is_success:
            return payload if isinstance(payload, dict) else {}
        raise _classified(response, payload)


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
