"""Managing a builder in a real browser (Playwright driving Debian's Chromium): the admin
creates a builder, adds its number and uploads a PDF, and a signed webhook to that
number is answered by the real Celery worker from that document; the charts then show
the day's messages. Screenshots go to `test-artifacts/`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import httpx
from playwright.async_api import Browser, Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.conftest import ADMIN_TOKEN
from tests.factories import FIXTURES, post_signed, twilio_form
from tests.fakes.openai import FakeOpenAI, function_call, message
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered
from tests.waiting import at_least, eventually
from tests.webhooks.dashboard.test_browser import (  # the shared Chromium and its checks
    ARTIFACTS,
    CSP_WATCH,
    blocked_by_csp,
    worker_settles,
)

__all__ = ["worker_settles"]  # a fixture, used by name

NUMBER = "whatsapp:+14155550123"


def searching_model(request: dict[str, Any]) -> list[dict[str, Any]]:
    """A model that looks the question up, then answers with what the tool returned."""
    last = request["input"][-1]
    if last.get("type") == "function_call_output":
        return [message(f"From our documents: {last['output']}")]
    return [function_call("search_documents", {"query": last["content"]})]


async def admin_signed_in(browser: Browser, base_url: str) -> Page:
    context = await browser.new_context(base_url=base_url, viewport={"width": 1100, "height": 900})
    await context.add_init_script(CSP_WATCH)
    page = await context.new_page()
    await page.goto("/login")
    await page.get_by_label("Token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/builders$"))
    return page


async def test_a_builder_made_in_the_browser_answers_from_its_uploaded_document(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    page = await admin_signed_in(browser, live_receiver)
    await page.get_by_text("New builder").click()
    await page.get_by_label("Name").fill("Sunday Bakery")
    await page.get_by_label("Instructions").fill("You answer for the Sunday Bakery.")
    await page.get_by_label("Temperature").fill("0.2")
    await page.get_by_role("button", name="Create builder").click()
    await page.wait_for_url(re.compile(r"/builders/[0-9a-f-]{36}/settings"))
    await expect(page.get_by_role("status")).to_have_text("Builder Sunday Bakery created.")
    await expect(page.get_by_label("Temperature")).to_have_value("0.2")

    await page.get_by_label("Number", exact=True).fill("+1 415 555 0123")
    await page.get_by_role("button", name="Add number").click()
    await expect(page.get_by_role("status")).to_have_text(f"Number {NUMBER} added.")
    await expect(page.locator("#numbers tbody")).to_contain_text(NUMBER)
    await page.screenshot(path=ARTIFACTS / "builder-created.png", full_page=True)

    await page.get_by_label(re.compile("^File")).set_input_files(FIXTURES / "media" / "order.pdf")
    await page.get_by_role("button", name="Upload document").click()
    await expect(page.get_by_role("status")).to_have_text(re.compile(r"Document order.pdf added"))
    await expect(page.locator("#documents tbody")).to_contain_text("order.pdf")

    fake_openai.respond = searching_model
    async with httpx.AsyncClient() as client:
        question = twilio_form("When is the pickup on Saturday?", to=NUMBER)
        answered = await post_signed(client, f"{live_receiver}/webhooks/twilio", question)
        assert answered.status_code == 200
    [reply] = await at_least(fake_twilio.messages, 1, what="the bot's reply")
    assert reply["From"] == NUMBER
    assert reply["Body"].startswith("From our documents: [source: order.pdf]")
    assert "Pickup on Saturday at 10:00" in reply["Body"]

    await eventually(lambda: all_answered(db_sessions), what="the turn to finish")
    await page.reload()
    today = datetime.now(UTC).date().isoformat()
    await page.locator("#charts-heading").scroll_into_view_if_needed()
    await expect(page.locator(f'#chart-messages rect[aria-label="{today}: 2"]')).to_have_count(1)
    await expect(page.locator(f'#chart-turns rect[aria-label="{today}: 1"]')).to_have_count(1)
    replied_in = page.locator(f'#chart-reply-time rect[aria-label^="{today}: "]')
    await expect(replied_in).to_have_attribute("aria-label", re.compile(r": \d+\.\d s$"))
    await page.get_by_text("The numbers as a table").click()
    await expect(page.locator("#activity tbody tr").last).to_contain_text(today)
    await page.locator(".charts").screenshot(path=ARTIFACTS / "charts.png")
    assert await blocked_by_csp(page) == []
    await page.context.close()
