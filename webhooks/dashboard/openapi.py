"""The OpenAPI 3.1 description of the JSON API, served at `/api/openapi.json`."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/responses/Error"}
_UUID = {"type": "string", "format": "uuid"}


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _UUID}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": schema, "description": description}


_DENIED = {"401": _ERROR, "404": _ERROR, "429": _ERROR}
_SENT = {
    "description": "The parts sent (`sent` false and `error` when the provider refused one)",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["sent", "parts"],
                "properties": {
                    "sent": {"type": "boolean"},
                    "error": {"type": "string"},
                    "parts": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": _UUID,
                                "part": {"type": "integer"},
                                "status": {"type": "string"},
                                "error": {"type": ["string", "null"]},
                            },
                        },
                    },
                },
            }
        }
    },
}
_TEXT_OR_NULL = {"type": ["string", "null"]}
_SEND_RESPONSES = {
    "200": _SENT,
    "400": _ERROR,
    "403": _ERROR,
    "409": _ERROR,
    "413": _ERROR,
    "422": _SENT,
    "503": _ERROR,
    **_DENIED,
}
"""What an operator's reply and a template send answer alike (422: the provider refused)."""

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "wabot dashboard API",
        "version": "1",
        "description": (
            "Read builders' conversations from `session_items` and chat with a builder's agent. "
            "Authenticate with `Authorization: Bearer <token>`: the admin token (`ADMIN_TOKEN`) "
            "sees every builder; a builder token (`wabot token create BUILDER_ID`) sees only its "
            "builder, and another builder's ids answer 404. Too many wrong tokens from one "
            "address answer 429 with `Retry-After`. Bodies are capped at 64 KiB (413)."
        ),
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/builders/{builder_id}/sessions": {
            "get": {
                "summary": "A builder's sessions, with the number of stored items",
                "parameters": [
                    _path_id("builder_id"),
                    _query(
                        "q",
                        {"type": "string"},
                        "Search by any part of the user's name, by their whole number or "
                        "id (never a part: the list masks it), or by whole words said in "
                        "the conversation.",
                    ),
                    _query(
                        "show",
                        {"enum": ["attention", "paused", "web"]},
                        "Only sessions that need attention (latest turn failed, a reply "
                        "undelivered, paused with messages waiting, reply window closing "
                        "within 4 hours), paused ones, or web chats.",
                    ),
                    _query(
                        "sort",
                        {
                            "enum": ["last_activity", "item_count", "user", "platform", "status"],
                            "default": "last_activity",
                        },
                        "Sort key.",
                    ),
                    _query("order", {"enum": ["asc", "desc"], "default": "desc"}, "Direction."),
                    _query("page", {"type": "integer", "minimum": 1, "default": 1}, "Page."),
                    _query(
                        "per_page",
                        {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                        "Sessions per page.",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "One page of sessions",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/SessionPage"}
                            }
                        },
                    },
                    "400": _ERROR,
                    **_DENIED,
                },
            }
        },
        "/api/sessions/{session_id}/items": {
            "get": {
                "summary": "A session's items, oldest first, by keyset on `sequence`",
                "description": (
                    "Pass the previous answer's `next_after` as `after` until `has_more` is false: "
                    "every item is returned exactly once, even while new ones arrive."
                ),
                "parameters": [
                    _path_id("session_id"),
                    _query(
                        "after",
                        {"type": "integer", "minimum": -1, "maximum": 2**31 - 1, "default": -1},
                        "Only items with a larger sequence.",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 200, "default": 100},
                        "At most this many items.",
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "Items and where to continue",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ItemPage"}
                            }
                        },
                    },
                    "400": _ERROR,
                    **_DENIED,
                },
            }
        },
        "/media/{media_id}": {
            "get": {
                "summary": "A file a user sent (a photo, voice note, document), as its bytes",
                "description": (
                    "For the admin, or the builder whose conversation holds it (another "
                    "builder's id answers 404). Served with its content type, "
                    "`Content-Disposition` inline for images, audio and video and as an "
                    "attachment under its file name for documents, `nosniff`, a policy that "
                    "runs nothing, and `Cache-Control: private, no-cache` with its SHA-256 as "
                    "ETag (`If-None-Match` answers 304). One `Range: bytes=` range answers 206. "
                    "410 once its bytes are gone but its record is kept; 404 once both are."
                ),
                "parameters": [
                    _path_id("media_id"),
                    {
                        "name": "Range",
                        "in": "header",
                        "schema": {"type": "string", "pattern": "^bytes=[0-9]*-[0-9]*$"},
                        "description": "One byte range; anything else answers the whole file.",
                    },
                    {
                        "name": "If-None-Match",
                        "in": "header",
                        "schema": {"type": "string"},
                        "description": "The ETag of a copy held: 304 while it is current.",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The file's bytes",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    },
                    "206": {"description": "The byte range asked for"},
                    "304": {"description": "The copy the client holds is current"},
                    "410": {"description": "The file is no longer kept"},
                    "416": {"description": "The range starts past the file's end"},
                    **_DENIED,
                },
            }
        },
        "/api/sessions/{session_id}/reply": {
            "post": {
                "summary": "Reply as a human on a WhatsApp conversation",
                "description": (
                    "Stores the text in the session as an assistant message and sends it "
                    "through the conversation's number. Outside WhatsApp's 24-hour window "
                    "(more than 24 hours since the user's last message) it answers 409 with "
                    "the reason, and nothing is stored or sent: send a template instead. "
                    "409 too while the bot is answering. A send the provider refused answers "
                    "422 with its reason (the reply stays stored). Browsers signed in by "
                    "cookie must send `X-CSRF-Token`."
                ),
                "parameters": [_path_id("session_id")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["text"],
                                "properties": {"text": {"type": "string", "maxLength": 4096}},
                            }
                        }
                    },
                },
                "responses": _SEND_RESPONSES,
            }
        },
        "/api/sessions/{session_id}/template": {
            "post": {
                "summary": "Send an approved WhatsApp template (outside the 24-hour window too)",
                "description": (
                    "Sends one of the builder's approved templates (`wabot template sync` "
                    "stores Meta's, `wabot template add` Twilio's) with `variables` for its "
                    "`{{1}}`, `{{2}}`… in order; the session stores the body as the user "
                    "reads it. 404 for a template that is not the builder's, 400 for "
                    "variables that do not fit it, 409 for a template of another provider "
                    "than the conversation's or one not approved."
                ),
                "parameters": [_path_id("session_id")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["template_id"],
                                "properties": {
                                    "template_id": _UUID,
                                    "variables": {
                                        "type": "array",
                                        "items": {"type": "string", "maxLength": 1024},
                                    },
                                },
                            }
                        }
                    },
                },
                "responses": _SEND_RESPONSES,
            }
        },
        "/api/chat/{builder_id}": {
            "post": {
                "summary": "Send a message to the builder's agent on a web conversation",
                "description": (
                    'Runs the agent on the session `(builder, "web", conversation_id)`, which '
                    "the dashboard shows like any other. By default the answer is a "
                    "`text/event-stream` of `delta` (`{text}`), `tool_call` (`{name, arguments, "
                    "call_id}`), `tool_output` (`{call_id, output}`) events, ending with `done` "
                    '(`{session_id, reply}`) or `error` (`{message}`). With `"stream": false` '
                    "the answer is one JSON document. A conversation answers one message at a "
                    "time: a second request while one runs gets 409 at once (retry when the "
                    "first is done); a paused conversation answers 409 too. A client that "
                    "disconnects does not stop the run: the history keeps the whole turn. "
                    "Browsers signed in by cookie must send `X-CSRF-Token`."
                ),
                "parameters": [_path_id("builder_id")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ChatRequest"}}
                    },
                },
                "responses": {
                    "200": {
                        "description": "The run's events, or the whole answer",
                        "content": {
                            "text/event-stream": {"schema": {"type": "string"}},
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ChatReply"}
                            },
                        },
                    },
                    "400": _ERROR,
                    "403": _ERROR,
                    "409": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                    "502": _ERROR,
                    **_DENIED,
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "summary": "This description",
                "responses": {"200": {"description": "OpenAPI 3.1"}, "401": _ERROR},
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "responses": {
            "Error": {
                "description": "What was wrong",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["error"],
                            "properties": {"error": {"type": "string"}},
                        }
                    }
                },
            }
        },
        "schemas": {
            "Session": {
                "type": "object",
                "required": ["id", "platform", "user", "item_count", "last_activity", "status"],
                "properties": {
                    "id": _UUID,
                    "builder_id": _UUID,
                    "platform": {"type": "string", "examples": ["whatsapp", "web"]},
                    "user": {"type": "string", "description": "The user's id, numbers masked"},
                    "display_name": {"type": ["string", "null"]},
                    "item_count": {"type": "integer"},
                    "last_activity": {"type": "string", "format": "date-time"},
                    "status": {"enum": ["active", "paused", "failed turn"]},
                    "preview": {
                        "type": "string",
                        "description": "The latest user or assistant message as the "
                        "conversation page shows it ('📷 Photo: …', '🛒 Order: 2 items'), "
                        "shortened",
                    },
                    "waiting": {
                        "type": "integer",
                        "description": "Inbound messages not answered yet",
                    },
                    "unread": {
                        "type": "integer",
                        "description": "Inbound messages since an operator last opened it",
                    },
                    "attention": {
                        "type": "array",
                        "items": {
                            "enum": ["failed turn", "undelivered", "waiting", "window closing"]
                        },
                    },
                },
            },
            "SessionPage": {
                "type": "object",
                "required": ["sessions", "page", "per_page", "total", "total_exact"],
                "properties": {
                    "sessions": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Session"},
                    },
                    "page": {"type": "integer"},
                    "per_page": {"type": "integer"},
                    "total": {"type": "integer"},
                    "total_exact": {
                        "type": "boolean",
                        "description": "false when `total` is an estimate, to two"
                        " significant digits (more than 10,000 sessions)",
                    },
                },
            },
            "Item": {
                "type": "object",
                "required": ["sequence", "created_at", "role", "text", "item"],
                "properties": {
                    "sequence": {"type": "integer"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "role": {
                        "type": "string",
                        "description": "`user`, `assistant`, `tool`, or the SDK item type",
                    },
                    "text": {"type": "string", "description": "The display text extracted"},
                    "media": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/ItemMedia"},
                        "description": "A user message's files, in the order sent",
                    },
                    "order": {
                        "oneOf": [{"$ref": "#/components/schemas/ItemOrder"}, {"type": "null"}]
                    },
                    "location": {
                        "oneOf": [{"$ref": "#/components/schemas/ItemLocation"}, {"type": "null"}]
                    },
                    "item": {"type": "object", "description": "The SDK item as stored"},
                },
            },
            "ItemMedia": {
                "type": "object",
                "required": ["media_id", "kind", "label", "url", "missing"],
                "properties": {
                    "media_id": {"type": ["string", "null"], "format": "uuid"},
                    "kind": {
                        "type": "string",
                        "description": "`image`, `sticker`, `audio`, `video` or `document`",
                    },
                    "label": {"type": "string", "description": "e.g. `voice note`, `photo`"},
                    "content_type": _TEXT_OR_NULL,
                    "size_bytes": {"type": ["integer", "null"]},
                    "filename": _TEXT_OR_NULL,
                    "duration_seconds": {"type": ["number", "null"]},
                    "transcript": _TEXT_OR_NULL,
                    "url": {
                        "type": ["string", "null"],
                        "description": "`/media/{media_id}`, with this API's authentication",
                    },
                    "missing": {
                        "type": ["string", "null"],
                        "description": "Why there is no file: `no longer kept`, or what could "
                        "not be read",
                    },
                },
            },
            "ItemOrder": {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "catalog": _TEXT_OR_NULL,
                    "items": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                name: {"type": "string"}
                                for name in ("product", "quantity", "price", "currency")
                            },
                        },
                    },
                    "note": _TEXT_OR_NULL,
                },
            },
            "ItemLocation": {
                "type": "object",
                "required": ["latitude", "longitude", "map_url"],
                "properties": {
                    "latitude": {"type": "number"},
                    "longitude": {"type": "number"},
                    "name": _TEXT_OR_NULL,
                    "address": _TEXT_OR_NULL,
                    "map_url": {"type": "string", "description": "An OpenStreetMap link"},
                },
            },
            "ItemPage": {
                "type": "object",
                "required": ["session", "items", "has_more", "next_after"],
                "properties": {
                    "session": {"$ref": "#/components/schemas/Session"},
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                    "has_more": {"type": "boolean"},
                    "next_after": {"type": "integer"},
                },
            },
            "ChatRequest": {
                "type": "object",
                "required": ["conversation_id", "message"],
                "properties": {
                    "conversation_id": {"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,120}$"},
                    "message": {"type": "string", "minLength": 1, "maxLength": 8000},
                    "stream": {"type": "boolean", "default": True},
                },
            },
            "ChatReply": {
                "type": "object",
                "required": ["conversation_id", "session_id", "reply", "tool_calls"],
                "properties": {
                    "conversation_id": {"type": "string"},
                    "session_id": _UUID,
                    "reply": {"type": "string"},
                    "tool_calls": {"type": "array", "items": {"type": "object"}},
                },
            },
        },
    },
}
