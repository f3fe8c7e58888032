"""The dashboard in a real browser: Playwright driving Debian's Chromium against the
real app, on a conversation made by the real pipeline (signed webhook, Redis, the
Celery worker, the fake OpenAI and Twilio). Screenshots go to `test-artifacts/`."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from db.models import AgentSessionRow
from tests.factories import (
    FIXTURES,
    META_USER_WA_ID,
    builder_token,
    builder_with_channel,
    fixture_form,
    meta_notification,
    post_meta,
    post_signed,
    twilio_form,
)
from tests.fakes.meta import FakeGraphAPI
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import serve
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered
from tests.waiting import at_least, eventually
from tests.webhooks.dashboard.conftest import ARTIFACTS


@pytest.fixture(autouse=True)
async def worker_settles(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    await eventually(lambda: all_answered(db_sessions), what="the worker to finish its turns")


CSP_WATCH = """
window.addEventListener("securitypolicyviolation", (violation) => {
  const seen = JSON.parse(sessionStorage.getItem("csp-violations") || "[]");
  seen.push(`${violation.effectiveDirective} ${violation.blockedURI}`);
  sessionStorage.setItem("csp-violations", JSON.stringify(seen));
});
"""
"""Recorded by each page of a signed-in tab: what the Content-Security-Policy blocked."""


async def blocked_by_csp(page: Page) -> list[str]:
    """What the pages' own policy blocked in this tab: they must work under it."""
    return list(json.loads(await page.evaluate("sessionStorage.getItem('csp-violations')") or "[]"))


async def signed_in(browser: Browser, base_url: str, token: str) -> Page:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
    await context.add_init_script(CSP_WATCH)
    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/builders/"))
    return page


async def test_a_pipeline_conversation_in_the_browser(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    builder = await builder_with_channel(db_sessions)
    other = await builder_with_channel(db_sessions, address="whatsapp:+14155230000")
    token, other_token = (
        await builder_token(db_sessions, builder),
        await builder_token(db_sessions, other),
    )
    async with httpx.AsyncClient() as client:
        webhook = f"{live_receiver}/webhooks/twilio"
        assert (
            await post_signed(client, webhook, twilio_form("What time is it?"))
        ).status_code == 200
        [reply] = await at_least(fake_twilio.messages, 1, what="the bot's reply")
        delivered = {
            **fixture_form("status_delivered.txt"),
            "MessageSid": reply["sid"],
            "From": reply["From"],  # the number that sent it, as Twilio reports it
        }
        status = await post_signed(client, f"{webhook}/status", delivered)
        assert status.status_code == 200

        page = await signed_in(browser, live_receiver, token)
        await page.get_by_role("link", name=re.compile("Ada")).click()
        await expect(page.locator(".bubble")).to_have_count(2)
        bubbles = page.locator(".bubble")
        await expect(bubbles.nth(0)).to_have_class(re.compile(r"\buser\b"))
        await expect(bubbles.nth(0)).to_contain_text("What time is it?")
        await expect(bubbles.nth(1)).to_have_class(re.compile(r"\bassistant\b"))
        await expect(bubbles.nth(1)).to_contain_text(reply["Body"])
        entries = page.locator("#entries > .entry")
        await expect(entries).to_have_count(3)
        await expect(entries.nth(1).locator(".chip summary")).to_have_text("⚙ current_time")
        await entries.nth(1).locator(".chip summary").click()
        await expect(entries.nth(1).locator("pre").nth(0)).to_contain_text('"timezone": "UTC"')
        await expect(bubbles.nth(1).locator(".tick")).to_have_text("✓✓ delivered")
        await page.screenshot(path=ARTIFACTS / "conversation.png", full_page=True)

        # While the page is open, the user writes again: the page catches up by itself.
        again = twilio_form("Thanks!")
        assert (await post_signed(client, webhook, again)).status_code == 200
        await expect(page.locator(".bubble")).to_have_count(4, timeout=15_000)
        await expect(page.locator(".bubble").nth(3)).to_contain_text("You said: Thanks!")
        assert await blocked_by_csp(page) == []
        await page.context.close()

    async with db_sessions() as db:
        session_id = await db.scalar(select(AgentSessionRow.id))
    intruder = await signed_in(browser, live_receiver, other_token)
    refused = await intruder.goto(f"/sessions/{session_id}")
    assert refused is not None and refused.status == 404
    await expect(intruder.locator("p.error")).to_have_text("no such session")
    assert "What time is it?" not in await intruder.content()
    await intruder.screenshot(path=ARTIFACTS / "other-builder-404.png")
    await intruder.get_by_role("link", name="Back").click()  # a script file, under the CSP
    await intruder.wait_for_url(re.compile(r"/builders/"))
    assert await blocked_by_csp(intruder) == []
    await intruder.context.close()


async def test_try_it_streams_the_reply_into_the_page(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    receiver: str,
    fake_openai: FakeOpenAI,
) -> None:
    builder = await builder_with_channel(db_sessions)
    page = await signed_in(browser, receiver, await builder_token(db_sessions, builder))
    await page.get_by_role("link", name="Try it").click()
    fake_openai.delta_delay_seconds = 0.15
    message = "tell me about your sourdough bread and the opening hours please"
    await page.get_by_label("Message").fill(message)
    await page.get_by_role("button", name="Send").click()

    reply = page.locator(".bubble.assistant")
    # Part of the answer is on screen while the rest is still streaming (the first few
    # deltas may arrive together on a busy machine).
    await page.wait_for_function(
        """(whole) => {
            const bubble = document.querySelector('.bubble.assistant.streaming');
            return bubble && bubble.textContent.length > 0
                && bubble.textContent.length < whole.length;
        }""",
        arg=f"You said: {message}",
    )
    await expect(reply).to_have_text(f"You said: {message}", timeout=15_000)
    await expect(reply).not_to_have_class(re.compile("streaming"))
    await page.screenshot(path=ARTIFACTS / "try-it.png", full_page=True)

    # The web conversation is a session like any other.
    await page.goto(f"/builders/{builder}")
    await expect(page.locator("#sessions tbody tr")).to_have_count(1)
    await expect(page.locator("#sessions tbody tr td").first).to_have_text("web")
    assert await blocked_by_csp(page) == []
    await page.context.close()


async def test_another_site_cannot_frame_a_dashboard_page(browser: Browser, receiver: str) -> None:
    """Clickjacking: a page of another origin that frames the sign-in form gets Chromium's
    error page in the frame instead."""

    async def framing(_request: Request) -> Response:
        return HTMLResponse(f'<h1>Win a prize</h1><iframe src="{receiver}/login"></iframe>')

    with serve(Starlette(routes=[Route("/", framing)])) as other_site:
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(other_site)  # returns once the frame has loaded
        [frame] = page.main_frame.child_frames
        assert frame.url.startswith("chrome-error://"), frame.url
        assert await frame.locator("#token").count() == 0
        await page.screenshot(path=ARTIFACTS / "framed-refused.png")
        await context.close()


MEDIA = FIXTURES / "media"
CORPUS = FIXTURES / "corpus" / "meta"


def corpus_message(name: str, **changes: Any) -> dict[str, Any]:
    """The message of one of pywa's captured notifications, with a fresh id (they all
    share `wamid.xyzxyz`, which the inbox would keep once) and `changes` applied."""
    body = json.loads((CORPUS / name).read_text())
    [message] = body["entry"][0]["changes"][0]["value"]["messages"]
    message.pop("context", None)  # not forwarded: sent by the user themselves
    return {**message, "id": f"wamid.{uuid.uuid4().hex}", **changes}


async def test_a_conversation_with_media_an_order_and_a_location(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_graph: FakeGraphAPI,
    tmp_path: Path,
) -> None:
    """A photo with a caption, a voice note, a PDF, a catalog order and a shared place,
    sent as signed Meta webhooks (pywa's captured bodies) through the real worker: the
    page shows the photo, a player with the transcript beside it, a named download, the
    order as a table and the place with a map link; the API lists the same."""
    photo, voice_note, pdf = (
        (MEDIA / name).read_bytes() for name in ("photo.jpg", "voice_note.ogg", "order.pdf")
    )
    builder = await builder_with_channel(db_sessions, provider="meta", address="106540352242922")
    token = await builder_token(db_sessions, builder)
    image = corpus_message("pywa_message__image.json")
    image["image"] = {
        **image["image"],
        "id": fake_graph.add_media(photo, "image/jpeg"),
        "caption": "Do you have this cake?",
    }
    voice = corpus_message("pywa_message__voice.json")
    voice["audio"] = {**voice["audio"], "id": fake_graph.add_media(voice_note, "audio/ogg")}
    document = corpus_message("pywa_message__document.json")
    document["document"] = {
        **document["document"],
        "id": fake_graph.add_media(pdf, "application/pdf"),
        "filename": "order.pdf",
        "caption": "My order",
    }
    order = corpus_message("pywa_message__order.json")
    order["order"] = {**order["order"], "text": "Extra napkins please"}
    place = corpus_message("pywa_message__chosen_location.json")
    async with httpx.AsyncClient() as client:
        for sent, message in enumerate([image, voice, document, order, place], start=1):
            notification = meta_notification([{**message, "from": META_USER_WA_ID}])
            answer = await post_meta(client, f"{live_receiver}/webhooks/meta", notification)
            assert answer.status_code == 200
            await at_least(fake_graph.messages, sent, what="the bot's replies")

    page = await signed_in(browser, live_receiver, token)
    await page.get_by_role("link", name=re.compile("Sheena")).click()
    users = page.locator(".bubble.user")
    await expect(users).to_have_count(5)

    shown = users.nth(0).locator("img")
    await expect(shown).to_be_visible()
    await page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=await shown.element_handle()
    )
    assert await shown.evaluate("(img) => img.naturalWidth") == 96
    await expect(users.nth(0)).to_contain_text("Do you have this cake?")

    player = users.nth(1).locator("audio[controls]")
    await expect(player).to_have_count(1)
    answered = await page.evaluate(
        """async (src) => {
            const response = await fetch(src);
            return [response.status, response.headers.get("content-type"),
                    (await response.arrayBuffer()).byteLength];
        }""",
        await player.get_attribute("src"),
    )
    assert answered == [200, "audio/ogg", len(voice_note)]
    await expect(users.nth(1).locator(".transcript")).to_have_text(
        "I'd like to book a table for four"
    )
    await expect(users.nth(1).locator(".transcript")).to_be_visible()
    await expect(users.nth(1).locator(".transcript-box .label")).to_have_text("voice note 0:02")

    download = users.nth(2).get_by_role("link", name=re.compile("order.pdf"))
    await expect(download).to_have_text(f"order.pdf {len(pdf)} bytes")
    await expect(users.nth(2)).to_contain_text("My order")

    table = users.nth(3).locator("table.order")
    await expect(table.locator("caption")).to_have_text("Order from catalog 354160437058781")
    await expect(table.locator("tbody tr")).to_have_count(3)
    await expect(table.locator("tbody tr").nth(0).locator("td")).to_have_text(
        ["HAMBURGER", "3", "30", "ILS"]
    )
    await expect(table.locator("tbody tr").nth(2).locator("td")).to_have_text(
        ["SODA", "2", "10", "ILS"]
    )
    await expect(users.nth(3).locator(".order-note")).to_have_text("Note: Extra napkins please")

    await expect(users.nth(4).locator(".coordinates")).to_have_text("37.4611978, -122.2164385")
    await expect(users.nth(4)).to_contain_text("Facebook HQ")
    map_link = users.nth(4).get_by_role("link", name="Open in OpenStreetMap")
    href = await map_link.get_attribute("href")
    assert href is not None
    assert href.startswith("https://www.openstreetmap.org/?mlat=37.4611978&mlon=-122.2164385")
    assert await map_link.get_attribute("target") == "_blank"
    assert "noopener" in (await map_link.get_attribute("rel") or "").split()

    screenshots = [tmp_path / "media-conversation.png", tmp_path / "media-voice-note.png"]
    await page.screenshot(path=screenshots[0], full_page=True)
    await users.nth(1).screenshot(path=screenshots[1])
    print(f"screenshots: {', '.join(map(str, screenshots))}")  # noqa: T201
    assert await blocked_by_csp(page) == []
    await page.context.close()

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        session_id = page.url.rsplit("/", 1)[1]
        listed = await client.get(f"{live_receiver}/api/sessions/{session_id}/items")
    user_items = [item for item in listed.json()["items"] if item["role"] == "user"]
    [heard] = user_items[1]["media"]
    assert {key: heard[key] for key in ("kind", "label", "content_type", "transcript")} == {
        "kind": "audio",
        "label": "voice note",
        "content_type": "audio/ogg",
        "transcript": "I'd like to book a table for four",
    }
    assert heard["url"] == f"/media/{heard['media_id']}"
    assert heard["size_bytes"] == len(voice_note)
    [named] = user_items[2]["media"]
    assert (named["filename"], named["size_bytes"]) == ("order.pdf", len(pdf))
    assert user_items[3]["order"]["items"][0] == {
        "product": "HAMBURGER",
        "quantity": "3",
        "price": "30",
        "currency": "ILS",
    }
    assert user_items[4]["location"]["latitude"] == 37.4611978
