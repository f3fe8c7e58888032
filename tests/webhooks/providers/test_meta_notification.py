"""Every kind of WhatsApp message becomes something the agent can read, and anything
that is not a notification is refused with the path that is wrong."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.factories import meta_fixture, meta_notification, meta_text_message
from webhooks.providers.meta_notification import MalformedNotification, parse_notification


def parsed(body: bytes) -> Any:
    return parse_notification(json.loads(body))


def one_message(message: dict[str, Any], **envelope: Any) -> Any:
    [result] = parsed(meta_notification([message], **envelope)).messages
    return result


def test_documented_text_message() -> None:
    [message] = parsed(meta_fixture("text_message.json")).messages
    assert message.provider_message_id.startswith("wamid.HBgLMTY1MDM4Nzk0Mzk")
    assert (message.recipient, message.sender_wa_id, message.sender_user_id) == (
        "106540352242922",
        "16505551234",
        None,
    )
    assert (message.profile_name, message.kind, message.text) == (
        "Sheena Nelson",
        "text",
        "Does it come in another color?",
    )
    assert message.sender == "16505551234"


def test_image_with_business_scoped_user_id() -> None:
    [message] = parsed(meta_fixture("image_message.json")).messages
    assert (message.sender, message.sender_user_id) == (
        "972987654321",
        "US.13491208655302741918",
    )
    assert message.kind == "image" and message.text == ""
    assert message.media == [{"kind": "image", "id": "65463453", "content_type": "image/jpeg"}]


def test_button_reply() -> None:
    [message] = parsed(meta_fixture("interactive_button_reply.json")).messages
    assert (message.kind, message.text) == ("interactive", "title")


@pytest.mark.parametrize(
    ("fixture", "status", "error"),
    [
        ("status_delivered.json", "delivered", None),
        (
            "status_failed.json",
            "failed",
            "Meta error 130472: User's number is part of an experiment",
        ),
    ],
)
def test_documented_statuses(fixture: str, status: str, error: str | None) -> None:
    notification = parsed(meta_fixture(fixture))
    [update] = notification.statuses
    assert notification.messages == []
    assert (update.status, update.error) == (status, error)


@pytest.mark.parametrize(
    ("message", "kind", "text"),
    [
        (
            {
                "type": "image",
                "image": {"id": "1", "mime_type": "image/png", "caption": "Our cake"},
            },
            "image",
            "Our cake",
        ),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "list_reply",
                    "list_reply": {"id": "r1", "title": "Rye", "description": "Dark and dense"},
                },
            },
            "interactive",
            "Rye (Dark and dense)",
        ),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "nfm_reply",
                    "nfm_reply": {
                        "name": "flow",
                        "response_json": '{"flow_token": "T", "name": "Ana", "date": "2026-12-24",'
                        ' "address": {"city": "Lisbon"}, "extras": ["wifi", "parking"],'
                        ' "newsletter": false}',
                    },
                },
            },
            "interactive",
            "[form submitted: name: Ana, date: 2026-12-24, address.city: Lisbon,"
            " extras: wifi / parking, newsletter: no]",
        ),
        (
            {
                "type": "order",
                "order": {
                    "catalog_id": "123",
                    "text": "Ring twice [please]",
                    "product_items": [
                        {
                            "product_retailer_id": "ABC",
                            "quantity": 2,
                            "item_price": "10.00",
                            "currency": "EUR",
                        },
                        {
                            "product_retailer_id": "DEF",
                            "quantity": 1,
                            "item_price": 4.5,
                            "currency": "EUR",
                        },
                    ],
                },
            },
            "order",
            "[order from catalog 123: 2 × product ABC at 10.00 EUR; 1 × product DEF at 4.5 EUR;"
            " total 24.50 EUR]\nnote: Ring twice [please]",
        ),
        (
            {"type": "order", "order": {"product_items": "none"}},
            "order",
            "[order: no items]",
        ),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "call_permission_reply",
                    "call_permission_reply": {"response": "reject"},
                },
            },
            "call_permission",
            "[declined calls from the business]",
        ),
        (
            {"type": "revoke", "revoke": {"original_message_id": "wamid.o"}},
            "revoke",
            "[deleted a message]",
        ),
        (
            {
                "type": "edit",
                "edit": {
                    "original_message_id": "wamid.o",
                    "message": {"type": "text", "text": {"body": "at 8 [not 7]\nthanks"}},
                },
            },
            "edit",
            "[edited a message: at 8 (not 7) thanks]",
        ),
        (
            {"type": "edit", "edit": {"message": {"type": "edit", "edit": {}}}},
            "edit",
            "[edited a message]",
        ),
        (
            {"type": "unsupported", "unsupported": {"type": "edit"}},
            "edit",
            "[edited a message]",
        ),
        (
            {"type": "unsupported", "unsupported": {"type": "poll"}},
            "unsupported",
            "[unsupported message: poll]",
        ),
        (
            {
                "type": "system",
                "system": {"type": "user_changed_number", "wa_id": "31612345679", "body": "…"},
            },
            "system",
            "[changed their WhatsApp number to +31612345679]",
        ),
        (
            {"type": "button", "button": {"text": "Yes, book it", "payload": "BOOK"}},
            "button",
            "Yes, book it",
        ),
        (
            {
                "type": "location",
                "location": {
                    "latitude": 52.37,
                    "longitude": 4.89,
                    "name": "Dam Square",
                    "address": "Amsterdam",
                },
            },
            "location",
            "[location: 52.37, 4.89, Dam Square, Amsterdam]",
        ),
        (
            {
                "type": "contacts",
                "contacts": [
                    {
                        "name": {"formatted_name": "Jan Bakker"},
                        "phones": [{"phone": "+31 20 123 4567"}],
                    }
                ],
            },
            "contacts",
            "[shared contact: Jan Bakker, +31 20 123 4567]",
        ),
        (
            {"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}},
            "reaction",
            "[reacted 👍 to an earlier message]",
        ),
        (
            {"type": "unsupported", "errors": [{"code": 131051}]},
            "unsupported",
            "[unsupported message: unsupported]",
        ),
        (
            {"type": "hologram", "hologram": {"id": "h"}},
            "unsupported",
            "[unsupported message: hologram]",
        ),
        ({"type": 7}, "unsupported", "[unsupported message: ?]"),
    ],
)
def test_each_message_type_reads_as_agent_input(
    message: dict[str, Any], kind: str, text: str
) -> None:
    result = one_message({"id": "wamid.t", "from": "16505551234", **message})
    assert (result.kind, result.text) == (kind, text)


def test_documents_keep_their_file_name() -> None:
    document = {"id": "d1", "mime_type": "application/pdf", "filename": "menu.pdf"}
    result = one_message({"id": "wamid.d", "from": "1", "type": "document", "document": document})
    assert result.media == [
        {"kind": "document", "id": "d1", "content_type": "application/pdf", "filename": "menu.pdf"}
    ]


def test_a_user_without_a_phone_number_is_addressed_by_user_id() -> None:
    message = meta_text_message("hi", wa_id=None, user_id="US.13491208655302741918")
    result = one_message(message, wa_id=None, user_id="US.13491208655302741918")
    assert (result.sender_wa_id, result.sender_user_id) == (None, "US.13491208655302741918")
    assert result.sender == "US.13491208655302741918"


def test_a_batch_of_entries_changes_messages_and_statuses() -> None:
    change = json.loads(meta_notification([meta_text_message("a"), meta_text_message("b")]))
    status = json.loads(meta_fixture("status_delivered.json"))
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            change["entry"][0],
            {
                "id": "2",
                "changes": [
                    *status["entry"][0]["changes"],
                    {"field": "account_update", "value": {}},
                ],
            },
        ],
    }
    notification = parse_notification(body)
    assert [m.text for m in notification.messages] == ["a", "b"]
    assert [s.status for s in notification.statuses] == ["delivered"]


def test_other_objects_are_ignored() -> None:
    assert parse_notification({"object": "page", "entry": "anything"}).messages == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "body must be an object"),
        ({"object": "whatsapp_business_account"}, "entry must be a list"),
        (
            {"object": "whatsapp_business_account", "entry": [{"changes": {}}]},
            "entry[0].changes must be a list",
        ),
        (
            {
                "object": "whatsapp_business_account",
                "entry": [{"changes": [{"field": "messages", "value": {"metadata": {}}}]}],
            },
            "entry[0].changes[0].value.metadata.phone_number_id must be a non-empty string",
        ),
        (
            json.loads(meta_notification([{"type": "text", "text": {"body": "x"}, "from": "1"}])),
            "messages[0].id must be a non-empty string",
        ),
        (
            json.loads(
                meta_notification([{"id": "w", "type": "text", "text": {"body": "x"}}], wa_id=None)
            ),
            "names no sender",
        ),
    ],
)
def test_malformed_shapes_name_the_path(body: Any, reason: str) -> None:
    with pytest.raises(MalformedNotification, match=re.escape(reason)):
        parse_notification(body)
