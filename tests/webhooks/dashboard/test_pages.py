"""The server-rendered pages, read as HTML: builders at a glance, a builder's sessions,
and the conversation view built from `session_items`."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import stored_session
from tests.webhooks.dashboard.conftest import World


def sequences(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-sequence="(\d+)"', html)]


async def test_the_admin_sees_every_builder_at_a_glance(receiver: str, world: World) -> None:
    async with httpx.AsyncClient(headers=world.headers("admin")) as client:
        page = (await client.get(f"{receiver}/builders")).text
    rows = re.findall(r"<tr>\s*<td><a href=\"/builders/([0-9a-f-]+)\">", page)
    assert sorted(rows) == sorted([str(world.builder), str(world.other_builder)])
    assert "twilio whatsapp:+141•••••886" in page
    # Ada's session: 1 session, 4 messages (2 user, 2 assistant) today, 1 failed turn.
    assert re.search(
        rf'{world.builder}">Test Bakery</a></td>.*?<td class="num">1</td>\s*'
        r'<td class="num">4</td>\s*<td class="num bad">1</td>',
        page,
        re.S,
    )


async def test_sessions_are_sortable_searchable_and_masked(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await stored_session(
        db_sessions,
        world.builder,
        [{"role": "user", "content": "hi"}],
        external_id="+4400011",
        display_name=None,
    )
    url = f"{receiver}/builders/{world.builder}"
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        by_items = (await client.get(url, params={"sort": "item_count", "order": "asc"})).text
        searched = (await client.get(url, params={"q": "ada"})).text
        by_number = (await client.get(url, params={"q": "whatsapp:+31612345678"})).text
        by_prefix = (await client.get(url, params={"q": "+3161234"})).text
        bad = await client.get(url, params={"sort": "nope"})
    assert re.findall(r'<td class="num">(\d+)</td>', by_items) == ["1", "6"]
    assert "+316•••••678" in by_items and "31612345678" not in by_items
    assert "failed turn" in by_items
    assert "+440•011" in by_items
    assert "Ada" in searched and "+440•011" not in searched and "· 1 sessions" in searched
    assert "Ada" in by_number and "· 1 sessions" in by_number
    assert "Ada" not in by_prefix and "No sessions match" in by_prefix
    assert bad.status_code == 400 and "sort must be one of" in bad.text


async def test_the_conversation_shows_bubbles_chips_placeholders_and_failures(
    receiver: str, world: World
) -> None:
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        page = (await client.get(f"{receiver}/sessions/{world.session}")).text
        newer = (await client.get(f"{receiver}/sessions/{world.session}/updates?after=3")).json()
        older = await client.get(f"{receiver}/sessions/{world.session}/entries?before=3")
    assert sequences(page) == [0, 1, 3, 4, 5]  # the tool result sits in its call's chip
    assert re.search(r'class="bubble user">\s*<div class="text">What time is it\?</div>', page)
    assert "⚙ current_time" in page and "&#34;timezone&#34;: &#34;UTC&#34;" in page
    assert "Monday 12:00 UTC" in page
    assert '<div class="placeholder">Attachment: image/jpeg</div>' in page
    assert "⚠ Turn failed: model API 400: bad request" in page
    assert f"/turns/{world.failed_turn}/retry" in page
    assert sequences(newer["entries"]) == [4, 5] and newer["more"] is False
    assert sequences(older.text) == [0, 1] and older.headers["x-more"] == "0"


async def test_reactions_deletes_edits_orders_and_forms_read_plainly(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    items = [
        {"role": "user", "content": "[reacted 👍 to an earlier message]"},
        {"role": "user", "content": "[deleted a message]"},
        {"role": "user", "content": "[edited a message: at 8 please]"},
        {"role": "user", "content": "[changed their WhatsApp number to +31612345679]"},
        {"role": "user", "content": "[order from catalog 7: 2 × product ABC at 10 EUR]\nnote: hi"},
        {"role": "user", "content": "[form submitted: name: Ana, date: 2026-12-24]"},
    ]
    session = await stored_session(db_sessions, world.builder, items, external_id="+4420")
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        page = (await client.get(f"{receiver}/sessions/{session}")).text
    shown = re.findall(r'<div class="placeholder">([^<]*)</div>', page)
    assert shown == [
        "👍 reaction",
        "Deleted a message",
        "Edited a message: at 8 please",
        "Changed their WhatsApp number to +31612345679",
        "Order from catalog 7: 2 × product ABC at 10 EUR",
        "Form: name: Ana, date: 2026-12-24",
    ]
    assert '<div class="text">note: hi</div>' in page
