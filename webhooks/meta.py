"""Meta's WhatsApp Cloud API webhook: the subscription handshake and notifications.

A notification is verified (`X-Hub-Signature-256` over the raw body) before it is
parsed; its messages go to the inbox once each (the `wamid` is unique) and are
enqueued, its statuses advance outbound messages. Meta retries anything but a 200 for
days, so only a forged or unreadable request is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from db.log_context import log_context
from db.logs import mask_numbers
from db.outbox import apply_delivery_status
from webhooks.body import read_limited_body, without_nul
from webhooks.meta_notification import MalformedNotification, parse_notification
from webhooks.metrics import mark_duplicate

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
    _verify_signature(request, body)
    try:
        parsed = parse_notification(without_nul(json.loads(body), raw=body))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"the body is not JSON: {error}") from error
    except RecursionError as error:
        raise HTTPException(400, "the body nests too deeply") from error
    except MalformedNotification as error:
        raise HTTPException(400, str(error)) from error

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
            for status in parsed.statuses:
                await apply_delivery_status(
                    status.message_id, status.status, error=status.error, db=db
                )
    logger.debug(
        "meta notification: %d message(s), %d new, %d status(es)",
        len(parsed.messages),
        sum(outcome.to_enqueue for outcome in recorded),
        len(parsed.statuses),
    )
    return PlainTextResponse("ok")


def _verify_signature(request: Request, body: bytes) -> None:
    settings = request.app.state.settings
    if settings.meta_app_secret is None:
        raise HTTPException(403, "META_APP_SECRET is not configured; cannot verify Meta")
    header = request.headers.get("x-hub-signature-256", "")
    if not header:
        raise HTTPException(403, "missing X-Hub-Signature-256 header")
    secret = settings.meta_app_secret.get_secret_value().encode()
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(header.encode(), expected.encode()):
        logger.warning("meta notification refused: bad X-Hub-Signature-256")
        raise HTTPException(403, "invalid X-Hub-Signature-256")
