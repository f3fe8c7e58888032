"""Reading a WhatsApp Cloud API webhook notification into inbox messages and delivery
statuses.

Total over any JSON: a notification either parses or raises `MalformedNotification`
naming the path that is wrong. Message types we have never seen become `unsupported`
messages rather than errors, so new WhatsApp features cannot crash the receiver.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from db.addresses import channel_address
from db.inbox import MAX_ID_CHARACTERS, ReceivedMessage
from db.models import REACTION_KIND, UNSUPPORTED_KIND, OutboundStatus
from webhooks.providers.message_text import form_text, inline, location_text, order_text

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
LOCATION_FIELDS = ("latitude", "longitude", "name", "address")
DELETED_TEXT = "[deleted a message]"
RECORDED_AS_UNSUPPORTED = {
    "edit": "[edited a message]",
    "revoke": DELETED_TEXT,
    REACTION_KIND: "[reacted to an earlier message]",
}
"""What WhatsApp sometimes sends as `unsupported` with the real type inside: recorded as
that kind (not answered), not given the canned reply."""
DELIVERY_STATUSES = {
    "sent": OutboundStatus.SENT,
    "delivered": OutboundStatus.DELIVERED,
    "read": OutboundStatus.READ,
    "played": OutboundStatus.PLAYED,
    "failed": OutboundStatus.FAILED,
}


class MalformedNotification(ValueError):
    """The body is not a notification we can read; the message says where."""


@dataclass(frozen=True)
class MetaStatus:
    message_id: str
    status: OutboundStatus
    error: str | None
    phone_number_id: str
    """The business number whose change carried it: only that number's replies move."""
    outbound_id: uuid.UUID | None = None
    """Our id of the message, which Meta hands back from `biz_opaque_callback_data`."""


@dataclass
class Notification:
    messages: list[ReceivedMessage] = field(default_factory=list)
    statuses: list[MetaStatus] = field(default_factory=list)
    phone_number_ids: set[str] = field(default_factory=set)
    """Every business number the messages and statuses concern."""


def parse_notification(body: Any) -> Notification:
    """Every message and status in every entry and change of a `messages` notification."""
    notification = Notification()
    root = _object(body, "body")
    if root.get("object") != "whatsapp_business_account":
        return notification
    for e, entry in enumerate(_list(root.get("entry"), "entry")):
        entry_path = f"entry[{e}]"
        changes = _list(_object(entry, entry_path).get("changes", []), f"{entry_path}.changes")
        for c, change in enumerate(changes):
            path = f"{entry_path}.changes[{c}]"
            change = _object(change, path)
            if change.get("field") != "messages":
                continue
            _read_value(
                _object(change.get("value"), f"{path}.value"), f"{path}.value", notification
            )
    return notification


def _read_value(value: dict[str, Any], path: str, into: Notification) -> None:
    metadata = _object(value.get("metadata"), f"{path}.metadata")
    phone_number_id = _phone_number_id(
        metadata.get("phone_number_id"), f"{path}.metadata.phone_number_id"
    )
    into.phone_number_ids.add(phone_number_id)
    contacts = [
        _object(contact, f"{path}.contacts[{n}]")
        for n, contact in enumerate(_list(value.get("contacts", []), f"{path}.contacts"))
    ]
    for n, message in enumerate(_list(value.get("messages", []), f"{path}.messages")):
        into.messages.append(
            _message(
                _object(message, f"{path}.messages[{n}]"),
                phone_number_id,
                contacts,
                f"{path}.messages[{n}]",
            )
        )
    for n, status in enumerate(_list(value.get("statuses", []), f"{path}.statuses")):
        parsed = _status(
            _object(status, f"{path}.statuses[{n}]"), phone_number_id, f"{path}.statuses[{n}]"
        )
        if parsed is not None:
            into.statuses.append(parsed)


def _message(
    message: dict[str, Any], phone_number_id: str, contacts: list[dict[str, Any]], path: str
) -> ReceivedMessage:
    """The message with its sender: replies go to the phone number when WhatsApp shares
    it, else to the business-scoped user id."""
    message_id = _id(message.get("id"), f"{path}.id")
    wa_id = _optional_id(message.get("from"), f"{path}.from")
    user_id = _optional_id(message.get("from_user_id"), f"{path}.from_user_id")
    contact = _contact_of(contacts, wa_id, user_id)
    wa_id = wa_id or _optional_id(contact.get("wa_id"), f"{path} contact wa_id")
    user_id = user_id or _optional_id(contact.get("user_id"), f"{path} contact user_id")
    if not wa_id and not user_id:
        raise MalformedNotification(f"{path} names no sender (from / from_user_id)")
    profile = contact.get("profile")
    profile_name = profile.get("name") if isinstance(profile, dict) else None
    kind, text, media = _content(message, path)
    return ReceivedMessage(
        provider="meta",
        provider_message_id=message_id,
        recipient=phone_number_id,
        sender=wa_id or user_id or "",
        sender_wa_id=wa_id,
        sender_user_id=user_id,
        profile_name=profile_name if isinstance(profile_name, str) else None,
        kind=kind,
        text=text,
        media=media,
        payload={"message": message, "contact": contact},
    )


def _contact_of(
    contacts: list[dict[str, Any]], wa_id: str | None, user_id: str | None
) -> dict[str, Any]:
    for contact in contacts:
        if (wa_id and contact.get("wa_id") == wa_id) or (
            user_id and contact.get("user_id") == user_id
        ):
            return contact
    return contacts[0] if len(contacts) == 1 else {}


def _content(message: dict[str, Any], path: str) -> tuple[str, str, list[dict[str, str]]]:
    """(kind, agent-readable text, media) of a message of any type."""
    kind = message.get("type")
    body = message.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "text":
        return kind, _text(body.get("body"), f"{path}.text.body"), []
    if kind in MEDIA_KINDS:
        item = {
            "kind": kind,
            "id": _optional_text(body.get("id"), f"{path}.{kind}.id") or "",
            "content_type": _optional_text(body.get("mime_type"), f"{path}.{kind}.mime_type") or "",
        }
        if isinstance(body.get("filename"), str):
            item["filename"] = body["filename"]
        if kind == "audio" and isinstance(body.get("voice"), bool):
            item["voice"] = "yes" if body["voice"] else "no"
        caption = body.get("caption")
        return kind, caption if isinstance(caption, str) else "", [item]
    if kind == "interactive" and body.get("type") == "call_permission_reply":
        return "call_permission", _call_permission_text(body.get("call_permission_reply")), []
    if kind == "interactive":
        return kind, _interactive_text(body), []
    if kind == "button":
        return kind, str(body.get("text") or body.get("payload") or ""), []
    if kind == "location":
        return kind, location_text(*(body.get(key) for key in LOCATION_FIELDS)), []
    if kind == "contacts":
        return kind, _contacts_text(message.get("contacts")), []
    if kind == "order":
        return kind, order_text(body), []
    if kind == REACTION_KIND:
        emoji = body.get("emoji")
        if isinstance(emoji, str) and emoji:
            return kind, f"[reacted {emoji} to an earlier message]", []
        return kind, "[removed a reaction]", []
    if kind == "revoke":
        return kind, DELETED_TEXT, []
    if kind == "edit":
        return kind, _edit_text(body.get("message"), f"{path}.edit.message"), []
    if kind == "system":
        return kind, _system_text(body), []
    if kind == UNSUPPORTED_KIND and body.get("type") in RECORDED_AS_UNSUPPORTED:
        return body["type"], RECORDED_AS_UNSUPPORTED[body["type"]], []
    named = (kind == UNSUPPORTED_KIND and body.get("type")) or kind
    return (
        UNSUPPORTED_KIND,
        f"[unsupported message: {named if isinstance(named, str) else '?'}]",
        [],
    )


def _interactive_text(body: dict[str, Any]) -> str:
    reply_type = body.get("type")
    reply = body.get(reply_type) if isinstance(reply_type, str) else None
    if not isinstance(reply, dict):
        return "[interactive reply]"
    if reply_type == "nfm_reply":
        return form_text(reply.get("response_json"))
    title = reply.get("title")
    description = reply.get("description")
    text = str(title) if title else str(reply.get("id", ""))
    return f"{text} ({description})" if isinstance(description, str) and description else text


def _call_permission_text(reply: Any) -> str:
    response = reply.get("response") if isinstance(reply, dict) else None
    if response == "accept":
        return "[allowed the business to call them]"
    if response == "reject":
        return "[declined calls from the business]"
    return "[answered the request to call them]"


def _edit_text(edited: Any, path: str) -> str:
    """What the edited message says now (an edited photo's new caption, say)."""
    if not isinstance(edited, dict) or edited.get("type") == "edit":
        return "[edited a message]"
    _kind, text, _media = _content(edited, path)
    new_text = inline(text)
    return f"[edited a message: {new_text}]" if new_text else "[edited a message]"


def _system_text(body: dict[str, Any]) -> str:
    if body.get("type") == "user_changed_number" and isinstance(body.get("wa_id"), str):
        return f"[changed their WhatsApp number to +{body['wa_id'].lstrip('+')}]"
    if body.get("type") == "customer_identity_changed":
        return "[their WhatsApp identity changed (a new phone or a reinstall)]"
    return "[WhatsApp system message]"


def _contacts_text(contacts: Any) -> str:
    shared = []
    for contact in contacts if isinstance(contacts, list) else []:
        if not isinstance(contact, dict):
            continue
        name = contact.get("name")
        formatted = name.get("formatted_name") if isinstance(name, dict) else None
        phones = contact.get("phones")
        if not isinstance(phones, list):
            phones = []
        numbers = [p.get("phone") for p in phones if isinstance(p, dict) and p.get("phone")]
        shared.append(", ".join(str(part) for part in [formatted, *numbers] if part))
    return f"[shared contact: {'; '.join(shared) or 'unnamed'}]"


def _status(status: dict[str, Any], phone_number_id: str, path: str) -> MetaStatus | None:
    message_id = _text(status.get("id"), f"{path}.id")
    state = DELIVERY_STATUSES.get(str(status.get("status")))
    if state is None:
        return None
    errors = status.get("errors")
    error = None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        detail = first.get("title") or first.get("message") or ""
        error = f"Meta error {first.get('code')}: {detail}".strip()
    return MetaStatus(
        message_id=message_id,
        status=state,
        error=error,
        phone_number_id=phone_number_id,
        outbound_id=_outbound_id(status.get("biz_opaque_callback_data")),
    )


def _phone_number_id(value: Any, path: str) -> str:
    """As channels store it (`channel_address`): the number that chooses the app secret
    that must have signed the notification is the number its messages are routed to."""
    return _id(channel_address("meta", _text(value, path)), path)


def _outbound_id(callback_data: Any) -> uuid.UUID | None:
    """Our outbound id, when the callback data is one: another app on the same business
    account may send its own (any app subscribed to the account sees every status)."""
    try:
        return uuid.UUID(callback_data) if isinstance(callback_data, str) else None
    except ValueError:
        return None


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedNotification(f"{path} must be an object")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise MalformedNotification(f"{path} must be a list")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedNotification(f"{path} must be a non-empty string")
    return value


def _id(value: Any, path: str) -> str:
    return _bounded(_text(value, path), path)


def _optional_id(value: Any, path: str) -> str | None:
    text = _optional_text(value, path)
    return None if text is None else _bounded(text, path)


def _bounded(text: str, path: str) -> str:
    """Ids and numbers are indexed: longer ones than any WhatsApp sends are refused."""
    if len(text) > MAX_ID_CHARACTERS:
        raise MalformedNotification(f"{path} is longer than {MAX_ID_CHARACTERS} characters")
    return text


def _optional_text(value: Any, path: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedNotification(f"{path} must be a string")
    return value
