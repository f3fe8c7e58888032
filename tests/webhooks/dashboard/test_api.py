"""The JSON API: sessions with `item_count`, items by keyset pages (each exactly once),
clear 400s, and an OpenAPI description that names exactly the API's routes."""

from __future__ import annotations

import re

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.agent_session import DatabaseSession
from tests.factories import stored_session
from tests.webhooks.dashboard.conftest import World
from webhooks.dashboard.app import ROUTES


async def test_sessions_carry_their_item_count_and_a_masked_user(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await stored_session(
        db_sessions,
        world.builder,
        [{"role": "user", "content": "hello"}],
        external_id="+4915112345678",
        display_name="Grace",
    )
    url = f"{receiver}/api/builders/{world.builder}/sessions"
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        everyone = (await client.get(url, params={"sort": "item_count"})).json()
        found = (await client.get(url, params={"q": "grace"})).json()
        by_number = (await client.get(url, params={"q": "5112345"})).json()
        bad_sort = await client.get(url, params={"sort": "password"})
        bad_page = await client.get(url, params={"page": "zero"})
    assert [(s["display_name"], s["item_count"]) for s in everyone["sessions"]] == [
        ("Ada", 6),
        ("Grace", 1),
    ]
    assert everyone["total"] == 2
    assert everyone["sessions"][0]["user"] == "+316•••••678"
    assert everyone["sessions"][0]["status"] == "failed turn"
    assert [s["display_name"] for s in found["sessions"]] == ["Grace"]
    assert [s["display_name"] for s in by_number["sessions"]] == ["Grace"]
    assert bad_sort.status_code == 400 and "sort must be one of" in bad_sort.json()["error"]
    assert bad_page.status_code == 400 and bad_page.json()["error"].startswith("page must be")


async def test_items_come_with_their_display_text(receiver: str, world: World) -> None:
    async with httpx.AsyncClient(headers=world.headers("admin")) as client:
        page = (await client.get(f"{receiver}/api/sessions/{world.session}/items")).json()
    shown = [(item["sequence"], item["role"], item["text"]) for item in page["items"]]
    assert shown == [
        (0, "user", "What time is it?"),
        (1, "tool", 'current_time({"timezone": "UTC"})'),
        (2, "tool", "→ Monday 12:00 UTC"),
        (3, "assistant", "It is noon."),
        (4, "user", "Book a table\n[image/jpeg attached]"),
        (5, "assistant", "Sorry, something went wrong."),
    ]
    assert page["items"][3]["item"]["content"][0]["type"] == "output_text"
    assert (page["has_more"], page["next_after"]) == (False, 5)


async def test_paging_returns_every_item_exactly_once_while_items_arrive(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    items = [{"role": "user", "content": f"message {n}"} for n in range(237)]
    session_id = await stored_session(db_sessions, world.builder, items, external_id="+100")
    history = DatabaseSession(session_id, engine=db_sessions.kw["bind"])
    seen: list[int] = []
    after = -1
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        while True:
            page = (
                await client.get(
                    f"{receiver}/api/sessions/{session_id}/items",
                    params={"after": after, "limit": 50},
                )
            ).json()
            seen += [item["sequence"] for item in page["items"]]
            if len(seen) == 100:  # new items arrive mid-walk
                await history.add_items([{"role": "assistant", "content": "late"}] * 3)
            after = page["next_after"]
            if not page["has_more"]:
                break
        too_big = await client.get(
            f"{receiver}/api/sessions/{session_id}/items", params={"limit": 201}
        )
    assert seen == list(range(240))
    assert too_big.status_code == 400 and too_big.json() == {
        "error": "limit must be between 1 and 200"
    }


async def test_the_openapi_description_documents_exactly_the_api(
    receiver: str, world: World
) -> None:
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        spec = (await client.get(f"{receiver}/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }
    served = {
        (method, route.path)
        for route in ROUTES
        if route.path.startswith("/api/") and getattr(route, "methods", None)
        for method in route.methods
        if method != "HEAD"
    }
    assert documented == served
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), path
    assert "409" in spec["paths"]["/api/chat/{builder_id}"]["post"]["responses"]
