"""The usual receiver, built as the baseline for row 2: Flask on one gunicorn process,
twilio's validator, one SQLAlchemy transaction and one `.delay()` per webhook.

It does the same work as ours (verify, parse with the same parsers, record in the same
inbox table, enqueue the same task) the way it is commonly written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict

from celery import Celery
from flask import Flask, abort, request
from sqlalchemy import create_engine, select
from sqlalchemy.dialects.postgresql import insert
from twilio.request_validator import RequestValidator

from db.inbox import ReceivedMessage
from db.models import Channel, InboundMessage, InboundStatus
from webhooks.providers.meta_notification import parse_notification
from webhooks.providers.twilio import EMPTY_TWIML, parse_inbound
from worker.celery_app import PROCESS_INBOUND_TASK

app = Flask(__name__)
engine = create_engine(os.environ["DATABASE_URL"], pool_size=8)
celery = Celery("baseline", broker=os.environ["CELERY_BROKER_URL"])
celery.conf.update(task_default_queue=os.environ["CELERY_QUEUE"], task_ignore_result=True)
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
APP_SECRET = os.environ["META_APP_SECRET"].encode()
PUBLIC_BASE_URL = os.environ["PUBLIC_BASE_URL"]


@celery.task(name=PROCESS_INBOUND_TASK)
def process_inbound(inbound_id: int) -> None:
    """Declared so the receiver can `.delay()` it; the bench runs no worker for it."""


def record_and_enqueue(message: ReceivedMessage) -> None:
    with engine.begin() as conn:
        channel_id = conn.execute(
            select(Channel.id).where(
                Channel.provider == message.provider, Channel.address == message.recipient
            )
        ).scalar()
        status = InboundStatus.PENDING if channel_id else InboundStatus.UNROUTABLE
        inbound_id = conn.execute(
            insert(InboundMessage)
            .values(**asdict(message), channel_id=channel_id, status=status)
            .on_conflict_do_nothing()
            .returning(InboundMessage.id)
        ).scalar()
    if inbound_id is not None and channel_id is not None:
        process_inbound.delay(inbound_id)


@app.post("/webhooks/twilio")
def twilio_inbound() -> tuple[str, int, dict[str, str]]:
    signature = request.headers.get("X-Twilio-Signature", "")
    if not validator.validate(PUBLIC_BASE_URL + request.path, request.form, signature):
        abort(403)
    record_and_enqueue(parse_inbound(request.form))
    return EMPTY_TWIML, 200, {"Content-Type": "text/xml"}


@app.post("/webhooks/meta")
def meta_notification() -> str:
    body = request.get_data()
    expected = "sha256=" + hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected):
        abort(403)
    for message in parse_notification(json.loads(body)).messages:
        record_and_enqueue(message)
    return "ok"
