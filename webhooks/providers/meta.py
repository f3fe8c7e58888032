"""Meta's WhatsApp Cloud API webhook: the subscription handshake and notifications.

A notification is verified (`X-Hub-Signature-256` over the raw body) before it is
parsed, with whichever app secret signed it (META_APP_SECRET or a channel's own); once
parsed, every number it concerns must belong to that app secret. Its messages go to the
inbox once each (the `wamid` is unique) and are enqueued, its statuses advance the
outbound messages of the number each came under (and give the `wamid` of a reply part a
worker may have died sending, which they name by our outbound id). Meta retries
anything but a 200 for days, so only a forged or unreadable request is refused.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import replace

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from db import lossless_json
from db.core.log_context import log_context
from db.core.logging_setup import mask_numbers
from db.core.meta_signature import signed_by
from db.core.settings import Settings
from db.inbox import storable_message
from db.outbox import NamedPart, apply_delivery_status, record_provider_ids
from webhooks.providers.channel_secrets import WebhookSecrets
from webhooks.providers.meta_notification import (
    MalformedNotification,
    Notification,
    parse_notification,
)
from webhooks.providers.request_body import read_limited_body
from webhooks.receiver_metrics import mark_duplicate

logger = logging.getLogger(__name__)

# Meta batches up to 1,000 updates in one POST, bodies up to 3 MB.
MAX_BODY_BYTES = 4 * 1024 * 1024


async def verify_subscription(request: Request) -> Response:
    """Answer Meta's `hub.challenge` when the verify token matches."""
    settings = request.app.state.settings
    if settings.meta_verify_token is None:
        raise HTTPException(403, "META_VERIFY_TOKEN is not configured")
    params = request.query_params
    if params.get("hub.mode") != "subscribe":
        raise HTTPException(400, "hub.mode must be subscribe")
    token = params.get("hub.verify_token", "")
    expected = settings.meta_verify_token.get_secret_value()
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise HTTPException(403, "hub.verify_token does not match")
    challenge = params.get("hub.challenge")
    if not challenge:
        raise HTTPException(400, "hub.challenge is missing")
    return PlainTextResponse(challenge)


async def notification(request: Request) -> Response:
    body = await read_limited_body(request, limit=MAX_BODY_BYTES)
    parsed = await _verified_notification(request, body)
    recorded = await request.app.state.inbox_writer.record(parsed.messages)
    for message, outcome in zip(parsed.messages, recorded, strict=True):
        if outcome.inbound_id is None:
            continue
        with log_context(provider="meta", inbound_id=outcome.inbound_id):
            if not outcome.routed:
                logger.warning(
                    "meta inbound %s to phone number id %s: no builder owns it; kept as unroutable",
                    outcome.inbound_id,
                    message.recipient,
                )
            else:  # at DEBUG, like Twilio's: the inbox row is the record of receipt
                logger.debug(
                    "meta inbound %s (%s) from %s enqueued",
                    outcome.inbound_id,
                    message.provider_message_id,
                    mask_numbers(message.sender),
                )
    if recorded and all(outcome.inbound_id is None for outcome in recorded):
        mark_duplicate(request)
    if parsed.statuses:
        async with request.app.state.sessionmaker.begin() as db:
            await record_provider_ids(_named_parts(parsed), provider="meta", db=db)
            for status in parsed.statuses:
                await apply_delivery_status(
                    status.message_id,
                    status.status,
                    error=status.error,
                    provider="meta",
                    address=status.phone_number_id,
                    db=db,
                )
    logger.debug(
        "meta notification: %d message(s), %d new, %d status(es)",
        len(parsed.messages),
        sum(outcome.to_enqueue for outcome in recorded),
        len(parsed.statuses),
    )
    return PlainTextResponse("ok")


def _named_parts(parsed: Notification) -> list[NamedPart]:
    """The provider's id of each reply part a status names by our outbound id: recorded
    first, so a part its worker never marked sent takes this status too."""
    return [
        NamedPart(status.outbound_id, status.message_id, status.phone_number_id)
        for status in parsed.statuses
        if status.outbound_id is not None
    ]


async def _verified_notification(request: Request, body: bytes) -> Notification:
    """The notification, parsed once its signature verifies with some app secret, and
    only if every number it concerns belongs to that secret."""
    header = request.headers.get("x-hub-signature-256", "")
    if not header:
        raise HTTPException(403, "missing X-Hub-Signature-256 header")
    settings = request.app.state.settings
    parsed: list[Notification] = []  # parsed once, and only after a signature verified

    def refusal(secrets: WebhookSecrets) -> str | None:
        signer = _signer(secrets, settings, body, header)
        if signer is None:
            return _no_signer(secrets, settings)
        if not parsed:
            parsed.append(_parsed(body))
        return _foreign_number(secrets, settings, signer, parsed[0].phone_number_ids)

    channel_secrets = request.app.state.channel_secrets
    secrets = await channel_secrets.current()
    why = refusal(secrets)
    if why is None and not parsed[0].phone_number_ids <= secrets.meta.keys():
        fresher = await channel_secrets.fresher(secrets)  # numbers added since the last load?
        why = refusal(fresher) if fresher is not secrets else None
        secrets = fresher
    if why is not None:  # a number added, or given a new secret, since the last load?
        secrets = await channel_secrets.after_miss(secrets)
        why = refusal(secrets)
    if why is not None:
        why = lossless_json.plain_text(why)  # it may quote a number id, which could be any text
        logger.warning("meta notification refused: %s", why)
        raise HTTPException(403, why)
    return parsed[0]


def _parsed(body: bytes) -> Notification:
    """The notification; a body that may hold what the inbox cannot store as it is (a NUL,
    a lone surrogate, NaN, …: see `db.lossless_json`) has its messages made storable."""
    try:
        value, unusual = lossless_json.parse(body)
        notification = parse_notification(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"the body is not JSON: {error}") from error
    except RecursionError as error:
        raise HTTPException(400, "the body nests too deeply") from error
    except MalformedNotification as error:
        raise HTTPException(400, str(error)) from error
    except ValueError as error:  # an integer longer than Python reads (4,300 digits)
        raise HTTPException(400, f"the body holds a number we cannot read: {error}") from error
    if unusual:
        notification.messages = [storable_message(m) for m in notification.messages]
        notification.statuses = [
            replace(
                status,
                message_id=lossless_json.plain_text(status.message_id),
                error=None if status.error is None else lossless_json.plain_text(status.error),
            )
            for status in notification.statuses
        ]
    return notification


def _signer(secrets: WebhookSecrets, settings: Settings, body: bytes, header: str) -> str | None:
    """The app secret (global or a channel's own) whose HMAC of the raw body is `header`;
    the global one is tried first, since most notifications come from that app."""
    global_secret = settings.meta_app_secret
    candidates = [global_secret.get_secret_value()] if global_secret is not None else []
    candidates += [secret for secret in secrets.meta_app_secrets if secret not in candidates]
    for secret in candidates:
        if signed_by(body, header, secret):
            return secret
    return None


def _no_signer(secrets: WebhookSecrets, settings: Settings) -> str:
    if settings.meta_app_secret is None and not secrets.meta_app_secrets:
        return (
            "META_APP_SECRET is not configured and no number has an app secret of its own; "
            "cannot verify Meta"
        )
    return "invalid X-Hub-Signature-256"


def _foreign_number(
    secrets: WebhookSecrets, settings: Settings, signer: str, phone_number_ids: set[str]
) -> str | None:
    """Why a number of the notification is not one `signer` may speak for, or None: a
    number's own app secret speaks for it; the global one for numbers without their own
    (unknown ones included: they are kept as unroutable)."""
    signed_globally = (
        settings.meta_app_secret is not None
        and settings.meta_app_secret.get_secret_value() == signer
    )
    for phone_number_id in sorted(phone_number_ids):
        own = secrets.meta.get(phone_number_id)
        if own is not None and own.secret is None:
            return (
                f"phone number id {phone_number_id} has credentials of its own that cannot "
                "be decrypted (CREDENTIALS_KEY); cannot verify"
            )
        if (own.secret == signer) if own is not None else signed_globally:
            continue
        return (
            f"phone number id {phone_number_id} is not verified by the app secret that "
            "signed this notification"
        )
    return None
