"""One request's values never cost another its messages.

Good webhooks (real captured bodies) and poison ones (values the database could not hold
as they are: U+0000, lone surrogates, NaN, Infinity, 1e999, huge numbers, the encoding's
own marker, names and ids longer than any column had room for) arrive at once, from two
builders (one with its own Meta app secret) over both providers, through the real
receiver. Every good one is acknowledged and in the inbox once; each poison one is
either stored losslessly and acknowledged, or refused with a 4xx naming its field.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.core.credentials import MetaCredentials
from db.lossless_json import plain_text
from db.models import InboundMessage
from tests.factories import (
    BOT_NUMBER,
    META_PHONE_NUMBER_ID,
    builder_with_channel,
    fixture_form,
    meta_fixture,
    meta_signature,
    sign,
)
from tests.fakes.meta import APP_SECRET, OTHER_APP_SECRET
from tests.fakes.twilio import AUTH_TOKEN

OWN_APP_NUMBER = "106540352242999"
"""Builder B's Meta number, verified with B's own app secret only."""
GOOD_META = [
    "text_message.json",
    "image_message.json",
    "interactive_button_reply.json",
    "reaction.json",
    "current_location.json",
    "contacts.json",
]
GOOD_TWILIO = ["text.txt", "media_image.txt", "location.txt"]
HUGE = "__1e999__"
"""Stands for the JSON number 1e999 (which json.dumps cannot write) in a body."""


@dataclass
class Webhook:
    provider: str
    body: bytes
    headers: dict[str, str]
    message_id: str
    payload: Any
    """What the inbox row's payload must equal: the message as Python reads what was sent."""
    text: str | None
    profile_name: str | None
    fields: tuple[str, ...] = ()
    """The fields a refusal may name (a poison webhook's)."""


@pytest.fixture
async def receiver(
    make_receiver: Callable[..., str], db_sessions: async_sessionmaker[AsyncSession]
) -> str:
    """A receiver for builder A (a Twilio number and a Meta number on the global
    credentials) and builder B (a Meta number with its own app secret only)."""
    await builder_with_channel(db_sessions)
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    await builder_with_channel(
        db_sessions,
        provider="meta",
        address=OWN_APP_NUMBER,
        credentials=MetaCredentials(app_secret=OTHER_APP_SECRET),
    )
    return make_receiver()


def twilio_webhook(
    url: str, form: dict[str, str], *, text: str | None, fields: tuple[str, ...] = ()
) -> Webhook:
    return Webhook(
        provider="twilio",
        body=urlencode(form).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": sign(url, form, AUTH_TOKEN),
        },
        message_id=form["MessageSid"],
        payload=form,
        text=text,
        profile_name=form.get("ProfileName") or None,
        fields=fields,
    )


def good_twilio(url: str, name: str) -> Webhook:
    form = fixture_form(name)
    form.update(
        MessageSid=f"SM{uuid.uuid4().hex}", To=BOT_NUMBER, ProfileName="Ada", WaId="31612345678"
    )
    return twilio_webhook(url, form, text=form["Body"] or None)


def meta_webhook(
    notification: dict[str, Any],
    *,
    secret: str,
    text: str | None,
    fields: tuple[str, ...] = (),
) -> Webhook:
    body = json.dumps(notification).replace(f'"{HUGE}"', "1e999").encode()
    value = json.loads(body)["entry"][0]["changes"][0]["value"]
    [message], [contact] = value["messages"], value["contacts"]
    name = contact.get("profile", {}).get("name")
    return Webhook(
        provider="meta",
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(body, secret),
        },
        message_id=message["id"],
        payload={"message": message, "contact": contact},
        # What a JSON reader makes of the text sent: two lone surrogates side by side,
        # high then low, are escaped as a pair, which JSON reads as one character.
        text=None if text is None else json.loads(json.dumps(text)),
        profile_name=name if isinstance(name, str) else None,
        fields=fields,
    )


def good_meta(name: str, *, own_app: bool) -> Webhook:
    notification = json.loads(meta_fixture(name))
    value = notification["entry"][0]["changes"][0]["value"]
    value["metadata"]["phone_number_id"] = OWN_APP_NUMBER if own_app else META_PHONE_NUMBER_ID
    value["messages"][0]["id"] = f"wamid.{uuid.uuid4().hex}"
    text = value["messages"][0].get("text", {}).get("body")
    return meta_webhook(notification, secret=OTHER_APP_SECRET if own_app else APP_SECRET, text=text)


def meta_poison(
    text: str, name: str, extra: Any, sender: str, *, own_app: bool, huge: bool
) -> Webhook:
    message: dict[str, Any] = {
        "from": sender,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": "1749416383",
        "type": "text",
        "text": {"body": text},
        "extra": [extra, HUGE] if huge else extra,
    }
    notification = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550783881",
                                "phone_number_id": OWN_APP_NUMBER
                                if own_app
                                else META_PHONE_NUMBER_ID,
                            },
                            "contacts": [{"profile": {"name": name}, "wa_id": sender}],
                            "messages": [message],
                        },
                    }
                ],
            }
        ],
    }
    return meta_webhook(
        notification,
        secret=OTHER_APP_SECRET if own_app else APP_SECRET,
        text=text,
        fields=("messages[0].from", "contact wa_id"),
    )


ODD = [
    "\x00",
    "\ud800",
    "\udfff",
    "\ud83d",
    "wabot:json",
    '"wabot:json"',
    "e+",
    "-0.0",
    "NaN",
    "😀",
]


def odd_text(*, surrogates: bool) -> st.SearchStrategy[str]:
    """Text with what a database refuses or rewrites mixed in; long at times."""
    characters = st.characters(exclude_categories=() if surrogates else ("Cs",))
    pieces = st.sampled_from(
        [odd for odd in ODD if surrogates or odd.isprintable() or odd == "\x00"]
    )
    mixed = st.lists(pieces | st.text(characters, max_size=12), max_size=6).map("".join)
    return mixed | st.integers(150, 3000).map(lambda length: "Ω" * length)


numbers = (
    st.floats()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e16, 1e300, 5e-324])
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | odd_text(surrogates=True),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(odd_text(surrogates=True) | st.just("wabot:json"), children, max_size=3)
    ),
    max_leaves=8,
)
long_ids = st.integers(0, 700).map(lambda length: "9" * length)


@st.composite
def poison(draw: st.DrawFn, url: str) -> Webhook:
    if draw(st.booleans()):
        text = draw(odd_text(surrogates=False))
        form = {
            "MessageSid": f"SM{uuid.uuid4().hex}" + draw(long_ids),
            "AccountSid": "AC" + "0" * 32,
            "From": "whatsapp:+31612345678",
            "To": BOT_NUMBER,
            "Body": text or "-",
            "NumMedia": "0",
            "ProfileName": draw(odd_text(surrogates=False)),
            "WaId": "31612345678" + draw(long_ids),
            "wabot:json": draw(odd_text(surrogates=False)),
        }
        return twilio_webhook(url, form, text=form["Body"], fields=("MessageSid", "WaId"))
    return meta_poison(
        draw(odd_text(surrogates=True).filter(bool)),
        draw(odd_text(surrogates=True)),
        draw(json_values),
        "16505551234" + draw(long_ids),
        own_app=draw(st.booleans()),
        huge=draw(st.booleans()),
    )


async def deliver(receiver: str, webhooks: list[Webhook]) -> list[tuple[Webhook, httpx.Response]]:
    """POST every webhook at once (so the inbox writer takes them in shared batches)."""
    async with httpx.AsyncClient(timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{receiver}/webhooks/{webhook.provider}",
                    content=webhook.body,
                    headers=webhook.headers,
                )
                for webhook in webhooks
            )
        )
    return list(zip(webhooks, responses, strict=True))


def same_json(stored: Any, sent: Any) -> bool:
    """Equal as JSON text (NaN equals itself, 1e300 is not the integer 10**300)."""
    return json.dumps(stored, sort_keys=True) == json.dumps(sent, sort_keys=True)


async def check_outcomes(
    sessions: async_sessionmaker[AsyncSession], delivered: list[tuple[Webhook, httpx.Response]]
) -> None:
    ids = [webhook.message_id for webhook, _ in delivered]
    async with sessions() as db:
        rows = {
            (row.provider, row.provider_message_id): row
            for row in await db.scalars(
                select(InboundMessage).where(InboundMessage.provider_message_id.in_(ids))
            )
        }
    for webhook, response in delivered:
        row = rows.get((webhook.provider, webhook.message_id))
        if response.status_code == 200:
            assert row is not None, f"acknowledged but not in the inbox: {webhook.message_id}"
            assert same_json(row.payload, webhook.payload)
            if webhook.text is not None:
                assert row.text == plain_text(webhook.text)
            if webhook.profile_name is not None:
                assert row.profile_name == plain_text(webhook.profile_name)
        else:
            assert webhook.fields, f"a good webhook was refused: {response.text}"
            assert response.status_code in (400, 422), response.text
            assert any(field in response.text for field in webhook.fields), response.text
            assert row is None


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_poison_never_costs_a_good_webhook_its_messages(
    receiver: str, db_sessions: async_sessionmaker[AsyncSession], data: st.DataObject
) -> None:
    url = f"{receiver}/webhooks/twilio"
    goods = [good_twilio(url, name) for name in GOOD_TWILIO]
    goods += [good_meta(name, own_app=False) for name in GOOD_META]
    goods += [good_meta(name, own_app=True) for name in GOOD_META[:2]]
    poisons = data.draw(st.lists(poison(url), min_size=1, max_size=4))
    webhooks = data.draw(st.permutations(goods + poisons))

    delivered = await deliver(receiver, webhooks)

    for webhook, response in delivered:
        if not webhook.fields:
            assert response.status_code == 200, response.text
    await check_outcomes(db_sessions, delivered)


async def test_a_builder_with_its_own_app_secret_cannot_make_anothers_twilio_webhooks_fail(
    receiver: str, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The issue's case: 40 of builder A's Twilio texts and 5 of builder B's Meta
    notifications at once, each with a value the inbox used to refuse."""
    url = f"{receiver}/webhooks/twilio"
    goods = [good_twilio(url, GOOD_TWILIO[n % len(GOOD_TWILIO)]) for n in range(40)]
    poisons = [
        meta_poison("hi", "Ada", math.nan, "16505551234", own_app=True, huge=False),
        meta_poison("hi", "Ada", -math.inf, "16505551234", own_app=True, huge=True),
        meta_poison("a lone \ud800", "Ada", None, "16505551234", own_app=True, huge=False),
        meta_poison("a NUL \x00", "\x00" * 3, None, "16505551234", own_app=True, huge=False),
        meta_poison("hi", "A" * 300, None, "1" * 40, own_app=True, huge=False),
    ]
    long_twilio = good_twilio(url, "text.txt")
    form = {**copy.deepcopy(long_twilio.payload), "ProfileName": "B" * 300, "WaId": "3" * 40}
    webhooks = [*goods, *poisons, twilio_webhook(url, form, text=form["Body"])]

    delivered = await deliver(receiver, webhooks)

    assert [response.status_code for _, response in delivered] == [200] * len(webhooks)
    await check_outcomes(db_sessions, delivered)
