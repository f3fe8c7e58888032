"""A conversation whose items hold what only the lossless form can store (a NUL in a tool
result, a lone surrogate, NaN) is shown like any other: the page with U+FFFD where a
character cannot be shown, the JSON API with each item in its documented stored form."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import lossless_json
from tests.factories import stored_session
from tests.webhooks.dashboard.conftest import World

UNUSUAL: list[dict[str, Any]] = [
    {"role": "user", "content": "a lone \ud800 surrogate"},
    {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": '{"q": "x\x00"}'},
    {"type": "function_call_output", "call_id": "c1", "output": "page 1\x00page 2"},
    {"type": "usage", "tokens": math.nan},
    {
        "role": "assistant",
        "content": [{"type": "output_text", "text": "done\x00", "annotations": []}],
    },
]


async def test_unusual_items_are_shown_and_served(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    session_id = await stored_session(db_sessions, world.builder, UNUSUAL, external_id="+100")
    async with httpx.AsyncClient(headers=world.headers("admin")) as client:
        page = await client.get(f"{receiver}/sessions/{session_id}")
        api = await client.get(f"{receiver}/api/sessions/{session_id}/items")
    assert page.status_code == 200
    assert "a lone \ufffd surrogate" in page.text and "page 1\ufffdpage 2" in page.text
    assert api.status_code == 200
    items = api.json()["items"]
    assert [item["text"] for item in items] == [
        "a lone \ufffd surrogate",
        'lookup({"q": "x\ufffd"})',
        "→ page 1\ufffdpage 2",
        "",
        "done\ufffd",
    ]
    served = [lossless_json.decoded(item["item"]) for item in items]
    assert json.dumps(served, sort_keys=True) == json.dumps(UNUSUAL, sort_keys=True)
