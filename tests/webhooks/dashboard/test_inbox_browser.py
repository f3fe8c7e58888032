"""The inbox and "Try it" in a real browser (Playwright driving Debian's Chromium, the
one `browser` of this folder's conftest launches): filters and search on the sessions list; Enter
sends, Shift+Enter is a newline, and a reload continues the web chat."""

from __future__ import annotations

import re

from playwright.async_api import Browser, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AgentSessionRow
from tests.fakes.openai import FakeOpenAI
from tests.webhooks.dashboard.conftest import World
from tests.webhooks.dashboard.test_browser import ARTIFACTS, blocked_by_csp, signed_in
from tests.webhooks.dashboard.test_inbox import inbox


async def test_the_inbox_filters_and_searches_in_the_browser(
    browser: Browser,
    receiver: str,
    world: World,
    db_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await inbox(db_sessions, world)
    page = await signed_in(browser, receiver, world.token)
    rows = page.locator("#sessions tbody tr")
    await expect(rows).to_have_count(6)
    grace = rows.filter(has_text="Grace")
    await expect(grace.locator(".count-waiting")).to_have_text("2 waiting")
    await expect(grace.locator(".preview")).to_have_text("Do you bake sourdough on Sundays?")
    await expect(rows.filter(has_text="Web chat ·")).to_have_count(1)

    await page.get_by_role("link", name="Needs attention").click()
    await expect(rows).to_have_count(4)
    await expect(page.get_by_role("link", name="Needs attention")).to_have_attribute(
        "aria-current", "page"
    )
    await expect(rows.filter(has_text="Linus").locator(".badge-attention")).to_have_text(
        "undelivered"
    )
    await expect(rows.filter(has_text="Hopper").locator(".badge-attention")).to_have_text(
        "window closing"
    )
    await page.screenshot(path=ARTIFACTS / "inbox-filters.png", full_page=True)

    search = page.get_by_label("Search sessions")
    await search.fill("sourdough")
    await search.press("Enter")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Grace")
    await expect(page.get_by_role("link", name="Needs attention")).to_have_attribute(
        "aria-current", "page"
    )
    await page.get_by_role("link", name="All").click()
    await search.fill("+49 1510 0000 011")
    await search.press("Enter")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Linus")
    await search.fill("+49151000000")
    await search.press("Enter")
    await expect(rows).to_have_text(["No sessions match “+49151000000”."])
    await page.goto(f"/builders/{world.builder}?show=paused")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Grace")
    assert await blocked_by_csp(page) == []
    await page.context.close()


async def test_try_it_sends_on_enter_and_a_reload_continues_it(
    browser: Browser,
    receiver: str,
    world: World,
    db_sessions: async_sessionmaker[AsyncSession],
    fake_openai: FakeOpenAI,
) -> None:
    page = await signed_in(browser, receiver, world.token)
    await page.get_by_role("link", name="Try it").click()
    await page.wait_for_url(re.compile(r"/chat\?conversation=web-"))
    message = page.get_by_label("Message")
    await message.type("Two loaves")
    await message.press("Shift+Enter")
    await message.type("and a cake")
    await expect(message).to_have_value("Two loaves\nand a cake")
    await expect(page.locator(".bubble")).to_have_count(0)
    await message.press("Enter")
    reply = page.locator(".bubble.assistant")
    await expect(reply).to_have_text("You said: Two loaves\nand a cake", timeout=15_000)
    await expect(reply).not_to_have_class(re.compile("streaming"))
    await expect(message).to_have_value("")
    conversation_url = page.url

    await page.reload()
    bubbles = page.locator("#messages .bubble")
    await expect(bubbles).to_have_count(2)
    await expect(bubbles.nth(0)).to_have_text("Two loaves\nand a cake")
    await expect(bubbles.nth(1)).to_have_text("You said: Two loaves\nand a cake")
    await page.screenshot(path=ARTIFACTS / "try-it-continued.png", full_page=True)

    # Coming back to "Try it" continues the same conversation, which answers on.
    await page.goto(f"/builders/{world.builder}/chat")
    await page.wait_for_url(conversation_url)
    await expect(bubbles).to_have_count(2)
    await page.get_by_label("Message").fill("Thanks")
    await page.get_by_label("Message").press("Enter")
    await expect(bubbles.nth(3)).to_have_text("You said: Thanks", timeout=15_000)
    async with db_sessions() as db:
        web = list(
            await db.scalars(select(AgentSessionRow).where(AgentSessionRow.platform == "web"))
        )
    assert len(web) == 1 and conversation_url.endswith(web[0].external_id)

    await page.goto(f"/sessions/{web[0].id}")
    await expect(page.locator("h1")).to_have_text(
        re.compile(r"^Web chat · \w{3} \d{1,2} \w{3} \d\d:\d\d · Two loaves and a cake$")
    )
    await expect(page.locator("#origin-number")).to_have_text("the web chat")
    assert await blocked_by_csp(page) == []
    await page.context.close()
