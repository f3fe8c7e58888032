"""The JSON API: sessions with `item_count`, items by keyset pages (each exactly once),
clear 400s, and an OpenAPI description that names exactly the API's routes."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db import dashboard_queries
from db.agent_session import DatabaseSession
from tests.factories import stored_session
from tests.webhooks.dashboard.conftest import World
from webhooks.dashboard.dashboard_app import ROUTES


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
        by_number = (await client.get(url, params={"q": "+49 151 1234 5678"})).json()
        bad_sort = await client.get(url, params={"sort": "password"})
        bad_page = await client.get(url, params={"page": "zero"})
    assert [(s["display_name"], s["item_count"]) for s in everyone["sessions"]] == [
        ("Ada", 6),
        ("Grace", 1),
    ]
    assert (everyone["total"], everyone["total_exact"]) == (2, True)
    assert everyone["sessions"][0]["user"] == "+316•••••678"
    assert everyone["sessions"][0]["status"] == "failed turn"
    assert [s["display_name"] for s in found["sessions"]] == ["Grace"]
    assert [s["display_name"] for s in by_number["sessions"]] == ["Grace"]
    assert bad_sort.status_code == 400 and "sort must be one of" in bad_sort.json()["error"]
    assert bad_page.status_code == 400 and bad_page.json()["error"].startswith("page must be")


async def test_a_masked_number_is_found_whole_and_never_digit_by_digit(
    receiver: str, world: World
) -> None:
    """Ada is listed as +316•••••678. Guessing her hidden digits one search at a time (a
    prefix that finds her has the right digit) learns nothing; her whole number, however
    written, finds her."""
    url = f"{receiver}/api/builders/{world.builder}/sessions"
    number = "+31612345678"
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:

        async def finds_ada(q: str) -> bool:
            listing = (await client.get(url, params={"q": q})).json()
            return [s["display_name"] for s in listing["sessions"]] == ["Ada"]

        [listed] = (await client.get(url)).json()["sessions"]
        assert listed["user"] == "+316•••••678"
        hidden = range(4, len(number) - 3)
        confirmed = {
            position: [
                digit for digit in "0123456789" if await finds_ada(number[:position] + digit)
            ]
            for position in hidden
        }
        whole = [
            await finds_ada(q)
            for q in (number, "31612345678", "whatsapp:+31612345678", " +31 6 1234 5678 ")
        ]
    assert confirmed == {position: [] for position in hidden}
    assert whole == [True] * 4


async def test_a_list_longer_than_it_counts_says_its_total_is_an_estimate(
    receiver: str,
    world: World,
    db_sessions: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past `COUNTED_EXACTLY` sessions a full page's total is Postgres's estimate, never
    fewer than the sessions listed so far; a page that is not full counts exactly."""
    monkeypatch.setattr(dashboard_queries, "COUNTED_EXACTLY", 1)
    await stored_session(db_sessions, world.builder, [], external_id="+4915100000099")
    url = f"{receiver}/api/builders/{world.builder}/sessions"
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        first = (await client.get(url, params={"per_page": 1})).json()
        second = (await client.get(url, params={"per_page": 1, "page": 2})).json()
        partial = (await client.get(url, params={"per_page": 3})).json()
    assert first["total_exact"] is False and first["total"] >= 2
    assert second["total_exact"] is False and second["total"] >= 2
    assert (partial["total"], partial["total_exact"]) == (2, True)


async def test_sorting_by_user_never_orders_by_the_digits_the_list_masks(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    """Three nameless users the list shows alike (+316•••••678): asked in either
    direction, their order is the same, so it says nothing about their hidden digits."""
    hidden = ("+31612300678", "+31612345678", "+31612399678")
    for number in hidden:
        await stored_session(
            db_sessions, world.builder, [], platform="web", external_id=number, display_name=None
        )
    url = f"{receiver}/api/builders/{world.builder}/sessions"
    async with httpx.AsyncClient(headers=world.headers("builder")) as client:
        orders = [
            [
                s["id"]
                for s in (await client.get(url, params={"sort": "user", "order": order})).json()[
                    "sessions"
                ]
                if s["display_name"] is None
            ]
            for order in ("asc", "desc")
        ]
    assert len(orders[0]) == 3 and orders[0] == orders[1]


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
        if route.path.startswith(("/api/", "/media/")) and getattr(route, "methods", None)
        for method in route.methods
        if method != "HEAD"
    }
    assert documented == served
    for path, operations in spec["paths"].items():
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), path
    assert "409" in spec["paths"]["/api/chat/{builder_id}"]["post"]["responses"]
