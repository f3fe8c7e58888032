"""The 24-hour window in a real browser (Playwright driving Debian's Chromium, as in
`test_browser`): a pipeline conversation whose user last wrote 25 hours ago shows the
window closed, refuses a free-form reply with the reason, and sends an approved template
that appears in the transcript and at the fake Twilio."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
from playwright.async_api import Browser, expect
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InboundMessage
from db.reply_window import CLOSED_REASON
from db.templates import TemplateRow, store_templates
from tests.factories import (
    USER_NUMBER,
    builder_token,
    builder_with_channel,
    post_signed,
    twilio_form,
)
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from tests.waiting import at_least
from tests.webhooks.dashboard import test_browser as shared

worker_settles = shared.worker_settles
CONTENT_SID = "HX" + "d" * 32
BODY = "Hi {{1}}, we kept your {{2}} aside. Reply to pick a time."


async def test_a_template_is_sent_outside_the_window(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    async with httpx.AsyncClient() as client:
        webhook = f"{live_receiver}/webhooks/twilio"
        asked = await post_signed(client, webhook, twilio_form("Can you keep a rye loaf?"))
        assert asked.status_code == 200
    await at_least(fake_twilio.messages, 1, what="the bot's reply")
    async with db_sessions.begin() as db:
        await db.execute(
            update(InboundMessage).values(received_at=datetime.now(UTC) - timedelta(hours=25))
        )
        row = TemplateRow("kept_aside", "en", "APPROVED", BODY, content_sid=CONTENT_SID)
        await store_templates(builder, "twilio", [row], db=db)
    fake_twilio.contents[CONTENT_SID] = BODY
    fake_twilio.closed_windows.add(USER_NUMBER)

    page = await shared.signed_in(browser, live_receiver, token)
    await page.get_by_role("link", name=re.compile("Ada")).click()
    conversation = page.url
    await expect(page.locator("#window")).to_contain_text("24-hour window closed since")

    await page.get_by_label(re.compile("Reply as a human")).fill("Still want it?")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.locator("p.error")).to_contain_text(CLOSED_REASON)
    assert len(fake_twilio.messages) == 1  # the bot's answer only

    await page.goto(conversation)
    form = page.locator("#template form")
    await form.get_by_label("Variable {{1}}").fill("Ada")
    await form.get_by_label("Variable {{2}}").fill("rye loaf")
    await form.get_by_role("button", name="Send template kept_aside").click()
    await expect(page.locator(".notice")).to_have_text("Template sent and stored.")
    shown = "Hi Ada, we kept your rye loaf aside. Reply to pick a time."
    await expect(page.locator(".bubble.assistant").last).to_contain_text(shown)
    await page.screenshot(path=shared.ARTIFACTS / "template-outside-window.png", full_page=True)

    sent = fake_twilio.messages[-1]
    assert (sent["ContentSid"], sent["ContentVariables"]) == (
        CONTENT_SID,
        json.dumps({"1": "Ada", "2": "rye loaf"}),
    )
    assert sent["rendered_body"] == shown
    assert await shared.blocked_by_csp(page) == []
    await page.context.close()
