"""Every real webhook body of the shared corpus (`tests/fixtures/corpus/`, see its
SOURCES.md), signed and posted over HTTP to the real receiver feeding a real worker:
each is accepted, each message recorded once, and each message type reaches the fake
model as a person would read it, or is recorded without an answer."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InboundMessage, SessionItem
from tests.factories import FIXTURES, builder_with_channel, post_meta, post_signed
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI, latest_user_text
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered, inbound_messages, outbound_messages
from tests.waiting import at_least, eventually

CORPUS = FIXTURES / "corpus"
META_BODIES = sorted((CORPUS / "meta").glob("*.json"))
TWILIO_BODIES = sorted((CORPUS / "twilio").glob("*.txt"))
PLACEHOLDER_NUMBER_ID = "100000000000001"
CANNED = "Please send that as text."
MEDIA = None
"""What the agent reads for media is the media work's to say: these rows check only
that the message was answered (and its caption reached the model)."""

# file stem → (recorded kind, what the model reads, how it is handled): "agent" (the
# model answers), "recorded" (kept in the session, no model call, nothing sent) or
# "canned" (the builder's reply for messages nobody can read, no model call).
META_MESSAGES: dict[str, tuple[str, str | None, str]] = {
    "pywa_call_permission_update__accept": (
        "call_permission",
        "[allowed the business to call them]",
        "recorded",
    ),
    "pywa_callback_button__button": ("interactive", "title", "agent"),
    "pywa_callback_button__quick_reply": ("button", "title", "agent"),
    "pywa_callback_button__quick_reply_without_context": ("button", "title", "agent"),
    "pywa_callback_selection__callback": ("interactive", "title", "agent"),
    "pywa_callback_selection__description": ("interactive", "title (description)", "agent"),
    "pywa_deleted_message__revoke": ("revoke", "[deleted a message]", "recorded"),
    "pywa_edited_message__image": (
        "edit",
        "[edited a message: Updated image caption]",
        "recorded",
    ),
    "pywa_flow_completion__completion": (
        "interactive",
        "[form submitted: comment_text: Comment Text, delivery_rating: 4, purchase_rating: 2,"
        " recommend_radio: 0, cs_rating: 0]",
        "agent",
    ),
    "pywa_flow_completion__without_flow_token": (
        "interactive",
        "[form submitted: comment_text: Comment Text, delivery_rating: 4, purchase_rating: 2,"
        " recommend_radio: 0, cs_rating: 0]",
        "agent",
    ),
    "pywa_message__animated_sticker": ("sticker", MEDIA, "agent"),
    "pywa_message__audio": ("audio", MEDIA, "agent"),
    "pywa_message__chosen_location": (
        "location",
        "[location: 37.4611978, -122.2164385, Facebook HQ, 1 Hacker Way, Menlo Park, CA 94025]",
        "agent",
    ),
    "pywa_message__contacts": (
        "contacts",
        "[shared contact: Chandler Bing, +1 555-555-5555; Monica, +1 666-666-6666;"
        " Rachel Green, +1 777-777-7777]",
        "agent",
    ),
    "pywa_message__current_location": ("location", "[location: 12.25089, 43.90539]", "agent"),
    "pywa_message__document": ("document", MEDIA, "agent"),
    "pywa_message__forwarded": ("text", "forwarded text", "agent"),
    "pywa_message__forwarded_many_times": ("text", "text forwarded many times", "agent"),
    "pywa_message__image": ("image", MEDIA, "agent"),
    "pywa_message__interactive_message_with_err": ("interactive", "[interactive reply]", "agent"),
    "pywa_message__media_with_url": ("image", MEDIA, "agent"),
    "pywa_message__order": (
        "order",
        "[order from catalog 354160437058781: 3 × product HAMBURGER at 30 ILS;"
        " 2 × product FRENCH_FRIES at 35 ILS; 2 × product SODA at 10 ILS; total 180 ILS]",
        "agent",
    ),
    "pywa_message__reaction": ("reaction", "[reacted 😮 to an earlier message]", "recorded"),
    "pywa_message__referral": ("text", "BODY", "agent"),
    "pywa_message__reply": ("text", "replied text", "agent"),
    "pywa_message__static_sticker": ("sticker", MEDIA, "agent"),
    "pywa_message__text": ("text", "Body Text", "agent"),
    "pywa_message__unreaction_empty": ("reaction", "[removed a reaction]", "recorded"),
    "pywa_message__unreaction_no_emoji": ("reaction", "[removed a reaction]", "recorded"),
    "pywa_message__unsupported": ("unsupported", "[unsupported message: unsupported]", "canned"),
    "pywa_message__unsupported_with_type": ("unsupported", "[unsupported message: pool]", "canned"),
    "pywa_message__video": ("video", MEDIA, "agent"),
    "pywa_message__voice": ("audio", MEDIA, "agent"),
    "pywa_system__identity_change": (
        "system",
        "[their WhatsApp identity changed (a new phone or a reinstall)]",
        "recorded",
    ),
    "pywa_system__phone_number_change": (
        "system",
        "[changed their WhatsApp number to +972912345678]",
        "recorded",
    ),
}
TWILIO_MESSAGES: dict[str, tuple[str, str | None, str]] = {
    "botbuilder_location": (
        "location",
        "[location: 52.303897857666016, 4.750025749206543, Microsoft,"
        " Evert van de Beekstraat 354, Schiphol, North Holland 1118 CZ]",
        "agent",
    ),
    "botbuilder_media_image": ("image", MEDIA, "agent"),
    "botbuilder_text": ("text", "test", "agent"),
}
CAPTIONS = {"pywa_message__document": "caption", "pywa_message__video": "caption"}


def meta_body(path: Path, index: int) -> tuple[bytes, list[str], str]:
    """The body as captured, made one user's own: the corpus reuses its example user,
    user id and message ids across files, and some hold placeholders for the business
    number id. Returns the body, its message ids and its user's number."""
    text = path.read_text()
    number = f"3161{index:08d}"
    value = json.loads(text)["entry"][0]["changes"][0]["value"]
    ids = [message["id"] for message in value.get("messages", [])]
    for message_id in ids:
        text = text.replace(f'"{message_id}"', f'"{message_id}.{index}"')
    for user in ("972987654321", "16505551234", "<WHATSAPP_USER_PHONE_NUMBER>"):
        text = text.replace(user, number)
    text = re.sub(r"US\.\d+", f"US.{number}", text)
    text = text.replace("<BUSINESS_PHONE_NUMBER_ID>", PLACEHOLDER_NUMBER_ID)
    return text.encode(), [f"{message_id}.{index}" for message_id in ids], number


def twilio_form(path: Path, index: int) -> tuple[dict[str, str], str]:
    """The form as captured, sent by a user of its own (the corpus shares one)."""
    form = dict(parse_qsl(path.read_text(), keep_blank_values=True))
    if "MessageStatus" not in form:
        form["From"] = f"whatsapp:+3162{index:08d}"
    return form, form["From"]


async def session_items_of(
    sessions: async_sessionmaker[AsyncSession], provider_message_id: str
) -> tuple[InboundMessage, list[dict[str, Any]]]:
    async with sessions() as db:
        [inbound] = await db.scalars(
            select(InboundMessage).where(InboundMessage.provider_message_id == provider_message_id)
        )
        items = await db.scalars(
            select(SessionItem.item_data)
            .where(SessionItem.session_id == inbound.session_id)
            .order_by(SessionItem.sequence)
        )
        return inbound, list(items)


async def test_every_corpus_body_is_accepted_recorded_once_and_read_as_a_person_would(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
    fake_twilio: FakeTwilio,
) -> None:
    number_ids = {"1122334455667", "106540352242922", PLACEHOLDER_NUMBER_ID}
    for number_id in number_ids:
        await builder_with_channel(
            db_sessions, provider="meta", address=number_id, unsupported_reply=CANNED
        )
    await builder_with_channel(db_sessions, address="whatsapp:+14123456789")
    expected: dict[str, tuple[str, tuple[str, str | None, str], str]] = {}
    async with httpx.AsyncClient(timeout=30) as client:
        for index, path in enumerate(META_BODIES):
            body, message_ids, number = meta_body(path, index)
            response = await post_meta(client, f"{live_receiver}/webhooks/meta", body)
            assert response.status_code == 200, (path.name, response.text)
            for message_id in message_ids:
                expected[message_id] = (number, META_MESSAGES[path.stem], path.stem)
            assert (path.stem in META_MESSAGES) == bool(message_ids), path.name
        for index, path in enumerate(TWILIO_BODIES):
            form, sender = twilio_form(path, index)
            route = "twilio/status" if "MessageStatus" in form else "twilio"
            response = await post_signed(client, f"{live_receiver}/webhooks/{route}", form)
            assert response.status_code == 200, (path.name, response.text)
            if route == "twilio":
                expected[form["MessageSid"]] = (sender, TWILIO_MESSAGES[path.stem], path.stem)
    answered = [case for case in expected.values() if case[1][2] != "recorded"]
    await at_least(fake_graph.messages, len(answered) - len(TWILIO_MESSAGES), what="Meta replies")
    await at_least(fake_twilio.messages, len(TWILIO_MESSAGES), what="Twilio replies")
    await eventually(partial(all_answered, db_sessions), within=60, what="every turn closed")

    inbox = await inbound_messages(db_sessions)
    assert sorted(m.provider_message_id for m in inbox) == sorted(expected)
    assert {m.status for m in inbox} == {"processed"}
    replied_to = [m["to"] for m in fake_graph.messages] + [m["To"] for m in fake_twilio.messages]
    model_read = {latest_user_text(request) for request in fake_openai.requests}
    for message_id, (sender, (kind, text, handling), stem) in expected.items():
        inbound, items = await session_items_of(db_sessions, message_id)
        assert inbound.kind == kind, stem
        user_items = [item["content"] for item in items if item.get("role") == "user"]
        if text is not None:
            assert user_items == [text], stem
        elif stem in CAPTIONS:
            assert CAPTIONS[stem] in user_items[0], stem
        assert replied_to.count(sender) == (0 if handling == "recorded" else 1), stem
        assert (user_items[0] in model_read) == (handling == "agent"), stem
        if handling == "canned":
            assert items[-1] == {"role": "assistant", "content": CANNED}, stem
    assert len(await outbound_messages(db_sessions)) == len(answered)


async def test_played_is_a_delivery_status_after_read(
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
) -> None:
    """Meta's `played` (a voice note listened to) moves a reply on from `read`; a late
    `delivered` does not move it back."""
    await builder_with_channel(db_sessions, provider="meta", address="1122334455667")
    url = f"{live_receiver}/webhooks/meta"
    async with httpx.AsyncClient(timeout=30) as client:
        body, _ids, _number = meta_body(CORPUS / "meta" / "pywa_message__text.json", 0)
        assert (await post_meta(client, url, body)).status_code == 200
        [sent] = await at_least(fake_graph.messages, 1, what="the reply")
        for status in ("read", "played", "delivered"):
            captured = (CORPUS / "meta" / f"pywa_message_status__{status}.json").read_text()
            update = captured.replace('"wamid.xyzxyz"', json.dumps(sent["id"]))
            assert (await post_meta(client, url, update.encode())).status_code == 200
    [reply] = await outbound_messages(db_sessions)
    assert reply.status == "played"
