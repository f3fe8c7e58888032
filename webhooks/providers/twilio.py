"""Twilio's WhatsApp webhooks: inbound messages and delivery status callbacks.

Both verify `X-Twilio-Signature` (twilio's own `RequestValidator`) over the public URL
and the form before acting, with the auth token of the number the webhook concerns (its
own when it has one, and then only that, else TWILIO_AUTH_TOKEN); inbound messages are
recorded and enqueued, never answered here: the reply goes out from a worker through
the REST API.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import parse_qsl

from multidict import MultiDict
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator

from db.addresses import channel_address
from db.core.log_context import log_context
from db.core.logging_setup import mask_numbers
from db.core.settings import Settings
from db.inbox import MAX_ID_CHARACTERS, ReceivedMessage, storable_message
from db.lossless_json import MARKER, plain_text
from db.models import UNSUPPORTED_KIND, OutboundStatus
from db.outbox import apply_delivery_status
from webhooks.providers.channel_secrets import WebhookSecrets
from webhooks.providers.message_text import location_text
from webhooks.providers.public_url import public_url
from webhooks.providers.request_body import read_limited_body
from webhooks.receiver_metrics import mark_duplicate

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_MEDIA = 10
KNOWN_KINDS = {
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "button",
    "interactive",
    "contacts",
    "reaction",
}
LOCATION_FIELDS = ("Latitude", "Longitude", "Label", "Address")
"""In the order Meta's are read (`location_text`): the two providers' locations read alike."""
ADDRESS_FIELDS = ("To", "From")
"""Our number and the user's: normalised, never kept as sent (`channel_address`)."""
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

# Twilio's MessageStatus values, folded onto ours.
DELIVERY_STATUSES = {
    "accepted": OutboundStatus.QUEUED,
    "scheduled": OutboundStatus.QUEUED,
    "queued": OutboundStatus.QUEUED,
    "sending": OutboundStatus.QUEUED,
    "sent": OutboundStatus.SENT,
    "delivered": OutboundStatus.DELIVERED,
    "read": OutboundStatus.READ,
    "undelivered": OutboundStatus.UNDELIVERED,
    "failed": OutboundStatus.FAILED,
    "canceled": OutboundStatus.FAILED,
}


async def inbound(request: Request) -> Response:
    form = await _verified_form(request, our_number="To")
    message = parse_inbound(form)
    [recorded] = await request.app.state.inbox_writer.record([message])
    if recorded.inbound_id is None:
        logger.info("twilio message %s is a redelivery; ignored", message.provider_message_id)
        mark_duplicate(request)
        return Response(EMPTY_TWIML, media_type="text/xml")
    with log_context(provider="twilio", inbound_id=recorded.inbound_id):
        if not recorded.routed:
            logger.warning(
                "twilio inbound %s to %s: no builder owns this number; kept as unroutable",
                recorded.inbound_id,
                mask_numbers(message.recipient),
            )
        else:  # the inbox row is the record of receipt; at INFO this line would cost
            logger.debug(  # over a tenth of the receiver's time per message
                "twilio inbound %s (%s) from %s enqueued",
                recorded.inbound_id,
                message.provider_message_id,
                mask_numbers(message.sender),
            )
    return Response(EMPTY_TWIML, media_type="text/xml")


async def status_callback(request: Request) -> Response:
    form = await _verified_form(request, our_number="From")
    message_sid, reported, our_address = (
        form.get("MessageSid"),
        form.get("MessageStatus"),
        form.get("From"),
    )
    if not message_sid or not reported or not our_address:
        raise HTTPException(400, "MessageSid, MessageStatus and From are required")
    status = DELIVERY_STATUSES.get(reported.lower())
    if status is None:
        logger.info("twilio status %r for %s ignored", reported, message_sid)
        return PlainTextResponse("ignored")
    error = None
    if form.get("ErrorCode"):
        error = f"Twilio error {form['ErrorCode']}: {form.get('ErrorMessage', '')}".strip()
        error = plain_text(error)  # a text column holds no NUL
    async with request.app.state.sessionmaker.begin() as db:
        applied = await apply_delivery_status(
            plain_text(message_sid),
            status,
            error=error,
            provider="twilio",
            address=our_address,
            db=db,
        )
    logger.info(
        "twilio status %s for %s (%s)", status, message_sid, "applied" if applied else "stale"
    )
    return PlainTextResponse("ok")


async def _verified_form(request: Request, *, our_number: str) -> MultiDict[str]:
    """The posted form, once its size, encoding and Twilio signature check out; the
    signature with the auth token of the number in field `our_number`, that number
    normalised first (`channel_address`), and the form handed on with its addresses in
    that same form, so the number the token speaks for is the number routed to. A
    `multidict.MultiDict` is the form type twilio's validator reads fastest."""
    body = await read_limited_body(request, limit=MAX_BODY_BYTES)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise HTTPException(400, "expected an application/x-www-form-urlencoded body")
    try:
        form = MultiDict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError as error:
        raise HTTPException(400, "the form is not valid UTF-8") from error
    signature = request.headers.get("x-twilio-signature")
    if not signature:
        raise HTTPException(403, "missing X-Twilio-Signature header")
    settings = request.app.state.settings
    url = public_url(request, settings)
    addresses = {
        name: channel_address("twilio", form[name]) for name in ADDRESS_FIELDS if name in form
    }
    address = addresses.get(our_number, "")
    channel_secrets = request.app.state.channel_secrets
    secrets = await channel_secrets.current()
    if address not in secrets.twilio:  # added since the last load?
        secrets = await channel_secrets.fresher(secrets)
    refusal = _refusal(secrets, address, url, form, signature, settings)
    if refusal is not None:  # a number added or given a new token since the last load?
        secrets = await channel_secrets.after_miss(secrets)
        refusal = _refusal(secrets, address, url, form, signature, settings)
    if refusal is not None:
        raise HTTPException(403, refusal)
    verified = MultiDict(form)
    verified.update(addresses)
    return verified


def _refusal(
    secrets: WebhookSecrets,
    address: str,
    url: str,
    form: MultiDict[str],
    signature: str,
    settings: Settings,
) -> str | None:
    """Why the signature does not verify with the auth token of `address`; None when it does."""
    own = secrets.twilio.get(address)
    if own is not None and own.secret is None:
        return "this number's own credentials cannot be decrypted (CREDENTIALS_KEY); cannot verify"
    if own is not None and own.secret is not None:
        token = own.secret
    elif settings.twilio_auth_token is not None:
        token = settings.twilio_auth_token.get_secret_value()
    else:
        return (
            "TWILIO_AUTH_TOKEN is not configured and this number has no auth token of its "
            "own; cannot verify Twilio"
        )
    if not RequestValidator(token).validate(url, form, signature):
        return "invalid X-Twilio-Signature"
    return None


def parse_inbound(form: Mapping[str, str]) -> ReceivedMessage:
    """Read Twilio's inbound-message parameters; 400 naming what is missing or malformed."""
    missing = [name for name in ("MessageSid", "From", "To") if not form.get(name)]
    if missing:
        raise HTTPException(400, f"missing form field(s): {', '.join(missing)}")
    for name in ("MessageSid", "From", "To", "WaId"):
        if len(form.get(name, "")) > MAX_ID_CHARACTERS:
            raise HTTPException(400, f"{name} is longer than {MAX_ID_CHARACTERS} characters")
    media_count = form.get("NumMedia", "0")
    if not (media_count.isascii() and media_count.isdigit()):
        raise HTTPException(400, f"NumMedia must be a whole number, got {media_count!r}")
    media: list[dict[str, str]] = []
    for index in range(min(int(media_count), MAX_MEDIA)):
        url = form.get(f"MediaUrl{index}")
        if not url:
            raise HTTPException(400, f"NumMedia is {media_count} but MediaUrl{index} is missing")
        media.append({"url": url, "content_type": form.get(f"MediaContentType{index}", "")})
    kind = _kind(form, media)
    message = ReceivedMessage(
        provider="twilio",
        provider_message_id=form["MessageSid"],
        recipient=form["To"],
        sender=form["From"],
        sender_wa_id=form.get("WaId") or None,
        sender_user_id=None,
        profile_name=form.get("ProfileName") or None,
        kind=kind,
        text=_agent_text(form, kind),
        media=media,
        payload=dict(form.items()),
    )
    # A form holds only text: what the inbox cannot store as it is, is a NUL or the marker.
    if MARKER in form or "\x00" in "".join([*form.keys(), *form.values()]):
        return storable_message(message)
    return message


def _kind(form: Mapping[str, str], media: list[dict[str, str]]) -> str:
    """Twilio's MessageType when we know it; otherwise what the message carries (older
    captures send a shared location as `Latitude`/`Longitude` with no MessageType)."""
    message_type, body = form.get("MessageType", ""), form.get("Body", "")
    if message_type in KNOWN_KINDS:
        return message_type
    if not message_type and form.get("Latitude") and form.get("Longitude"):
        return "location"
    if media:
        main_type = media[0]["content_type"].split("/")[0]
        return main_type if main_type in ("image", "video", "audio") else "document"
    return "text" if body or not message_type else UNSUPPORTED_KIND


def _agent_text(form: Mapping[str, str], kind: str) -> str:
    """What the agent reads: the body, a tapped button's text, or a shared location."""
    if kind == "location" and form.get("Latitude") and form.get("Longitude"):
        return location_text(*(form.get(key) for key in LOCATION_FIELDS))
    if kind == UNSUPPORTED_KIND:
        return f"[unsupported message: {form.get('MessageType')}]"
    return form.get("Body") or form.get("ButtonText") or ""
