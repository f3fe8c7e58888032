"""The provider requests `make demo` sends: what Twilio and Meta would POST, signed with
each provider's own algorithm."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from db.core.meta_signature import meta_signature


@dataclass(frozen=True)
class SignedRequest:
    """One webhook delivery; `message_id` is the provider id the reply will answer."""

    path: str
    message_id: str
    content: bytes
    headers: dict[str, str]
    shown_as: str

    def post(self, base_url: str) -> httpx.Response:
        return httpx.post(
            base_url + self.path, content=self.content, headers=self.headers, timeout=15
        )


@dataclass(frozen=True)
class Attached:
    """A file a Twilio message carries: its `MediaUrl`, type and what the demo calls it."""

    url: str
    content_type: str
    shown_as: str


def twilio_message(
    text: str,
    *,
    user: str,
    to: str,
    base_url: str,
    auth_token: str,
    attached: Attached | None = None,
) -> SignedRequest:
    """An inbound WhatsApp message from `user` to our number `to` as Twilio posts it
    (a text, or a file with `text` as its caption), with `X-Twilio-Signature`."""
    form = {
        "MessageSid": f"SM{uuid.uuid4().hex}",
        "AccountSid": "ACdemo",
        "From": user,
        "To": to,
        "Body": text,
        "NumMedia": "0",
        "ProfileName": "Ada",
        "WaId": user.removeprefix("whatsapp:+"),
    }
    if attached is not None:
        form |= {
            "NumMedia": "1",
            "MediaUrl0": attached.url,
            "MediaContentType0": attached.content_type,
        }
    path = "/webhooks/twilio"
    signature = RequestValidator(auth_token).compute_signature(base_url + path, form)
    return SignedRequest(
        path=path,
        message_id=form["MessageSid"],
        content=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
        shown_as=f"({attached.shown_as}) {text}".rstrip() if attached else text,
    )


def meta_message(
    message: dict[str, Any],
    *,
    wa_id: str,
    phone_number_id: str,
    app_secret: str,
    shown_as: str | None = None,
) -> SignedRequest:
    """A `messages` notification from `wa_id` to our `phone_number_id` as Meta posts it,
    with `X-Hub-Signature-256`; `shown_as` is what the demo prints for it."""
    message = {"id": f"wamid.{uuid.uuid4().hex}", "from": wa_id, "timestamp": "0", **message}
    body = json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "0",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550000001",
                                    "phone_number_id": phone_number_id,
                                },
                                "contacts": [{"profile": {"name": "Grace"}, "wa_id": wa_id}],
                                "messages": [message],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    kind = message["type"]
    return SignedRequest(
        path="/webhooks/meta",
        message_id=message["id"],
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(body, app_secret),
        },
        shown_as=shown_as
        or (message["text"]["body"] if kind == "text" else f"({kind}) {message[kind]}"),
    )


def meta_text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": text}}


def meta_order(
    catalog_id: str, items: list[tuple[str, int, float, str]], note: str
) -> dict[str, Any]:
    """A catalog order (product, quantity, price, currency of each item) with a note."""
    return {
        "type": "order",
        "order": {
            "catalog_id": catalog_id,
            "text": note,
            "product_items": [
                {
                    "product_retailer_id": product,
                    "quantity": quantity,
                    "item_price": price,
                    "currency": currency,
                }
                for product, quantity, price, currency in items
            ],
        },
    }


def meta_flow_reply(fields: dict[str, str], flow_token: str) -> dict[str, Any]:
    """A WhatsApp Flow's reply (`nfm_reply`): what the user filled in, as JSON text."""
    return {
        "type": "interactive",
        "interactive": {
            "type": "nfm_reply",
            "nfm_reply": {
                "name": "flow",
                "body": "Sent",
                "response_json": json.dumps({"flow_token": flow_token, **fields}),
            },
        },
    }
