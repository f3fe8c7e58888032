"""Taking over a conversation in a real browser (Playwright, Debian's Chromium) while the
real receiver and Celery worker run against the fake OpenAI and Twilio: a message that
arrives while the bot is paused, a human reply and a resume; a turn retried twice; a
reply the provider did not deliver; a cleared memory. Screenshots go to
`test-artifacts/`."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from playwright.async_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import AgentSessionRow, InboundMessage, SessionItem, Turn
from db.transcript import content_text
from tests.factories import (
    BOT_NUMBER,
    arrive,
    builder_token,
    builder_with_channel,
    channel_at,
    fixture_form,
    post_signed,
    stored_session,
    twilio_form,
)
from tests.fakes.openai import Failure, FakeOpenAI, latest_user_text
from tests.fakes.twilio import FakeTwilio
from tests.queries import all_answered
from tests.waiting import at_least, eventually
from tests.webhooks.dashboard import test_browser

ARTIFACTS = test_browser.ARTIFACTS
signed_in = test_browser.signed_in


@pytest.fixture(autouse=True)
async def worker_settles(db_sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    yield
    async with db_sessions.begin() as db:  # a paused conversation would wait forever
        for session in await db.scalars(select(AgentSessionRow)):
            session.paused_at = None
    await eventually(lambda: all_answered(db_sessions), what="the worker to finish its turns")


async def whatsapp(live_receiver: str, text: str) -> None:
    async with httpx.AsyncClient() as client:
        answer = await post_signed(client, f"{live_receiver}/webhooks/twilio", twilio_form(text))
    assert answer.status_code == 200


async def open_conversation(browser: Browser, live_receiver: str, token: str) -> Page:
    page = await signed_in(browser, live_receiver, token)
    await page.get_by_role("link", name=re.compile("Ada")).click()
    await page.wait_for_url(re.compile(r"/sessions/"))
    return page


async def test_a_message_that_arrives_while_paused_is_shown_and_a_human_answers_it(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    await whatsapp(live_receiver, "Hi there")
    await at_least(fake_twilio.messages, 1, what="the bot's first reply")
    page = await open_conversation(browser, live_receiver, token)
    await expect(page.locator("#entries .bubble")).to_have_count(2)
    await page.get_by_role("button", name="Pause the bot").click()
    await expect(page.locator("#status")).to_have_text("paused")

    # The page is open when the customer writes: the message shows up by itself.
    await whatsapp(live_receiver, "Do you deliver on Sundays?")
    waiting = page.locator("#waiting .bubble")
    await expect(waiting).to_have_count(1, timeout=15_000)
    await expect(waiting).to_contain_text("Do you deliver on Sundays?")
    await expect(waiting).to_contain_text("waiting for the operator")
    await expect(page.locator("#waiting-count")).to_have_text("1 waiting")
    await page.reload()
    # Paused with a message waiting: said once, by the count (the message is in the
    # transcript), not again by a badge, a "needs attention" line or a header field.
    await expect(page.locator("#status")).to_have_text("paused")
    await expect(page.locator("#waiting-count")).to_have_text("1 waiting")
    await expect(page.locator("#waiting-count")).to_have_class(re.compile(r"\bneeds-attention\b"))
    await expect(page.locator("#attention")).to_have_count(0)
    about = await page.locator("#about-conversation").inner_text()
    assert len(re.findall("waiting", about, re.IGNORECASE)) == 1, about
    await expect(page.locator("#conversation .bubble")).to_have_count(3)
    await expect(page.get_by_label(re.compile("what is waiting"))).to_be_checked()
    await page.screenshot(path=ARTIFACTS / "paused-conversation-waiting.png", full_page=True)
    asked = len(fake_openai.requests)

    await page.get_by_label(re.compile("Reply as a human")).fill("Yes, on Sundays until 2 pm.")
    await page.get_by_role("button", name="Send reply").click()
    await expect(page.locator(".notice")).to_have_text("Reply sent and stored.")
    bubbles = page.locator("#entries .bubble")
    await expect(bubbles).to_have_count(4)
    await expect(bubbles.nth(2)).to_contain_text("Do you deliver on Sundays?")
    await expect(bubbles.nth(3)).to_contain_text("Yes, on Sundays until 2 pm.")
    await expect(bubbles.nth(3)).to_contain_text("sent by a human")
    await expect(page.locator("#waiting .bubble")).to_have_count(0)
    await expect(page.locator("#waiting-count")).to_be_hidden()

    # Once a human has replied, resuming answers only what comes next by default.
    await expect(page.get_by_label(re.compile("only what comes next"))).to_be_checked()
    await page.get_by_role("button", name="Resume the bot").click()
    await expect(page.locator(".notice")).to_contain_text("Bot resumed; 0 waiting message(s)")
    await whatsapp(live_receiver, "Great, thanks!")
    sent = await at_least(fake_twilio.messages, 3, what="the answer to the next message")
    assert [message["Body"] for message in sent] == [
        "You said: Hi there",
        "Yes, on Sundays until 2 pm.",
        "You said: Great, thanks!",
    ]
    await eventually(lambda: all_answered(db_sessions), what="the turn to finish")
    # The model was never asked to answer the handled question, yet reads it as context.
    answered_now = [latest_user_text(request) for request in fake_openai.requests[asked:]]
    assert answered_now == ["Great, thanks!"]
    context = [content_text(item.get("content")) for item in fake_openai.requests[-1]["input"]]
    assert context[-3:] == [
        "Do you deliver on Sundays?",
        "Yes, on Sundays until 2 pm.",
        "Great, thanks!",
    ]
    await page.reload()
    texts = await page.locator("#entries .bubble .text").all_inner_texts()
    assert texts == [
        "Hi there",
        "You said: Hi there",
        "Do you deliver on Sundays?",
        "Yes, on Sundays until 2 pm.",
        "Great, thanks!",
        "You said: Great, thanks!",
    ]
    await expect(page.locator("#attention")).to_have_count(0)
    assert await test_browser.blocked_by_csp(page) == []
    await page.context.close()


async def failed_turn(db_sessions: async_sessionmaker[AsyncSession]) -> Turn | None:
    async with db_sessions() as db:
        return await db.scalar(select(Turn).where(Turn.status == "failed"))


async def test_a_turn_retried_twice_is_one_turn_with_its_attempts(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    fake_openai.failures.append(Failure(400))
    await whatsapp(live_receiver, "Order bread")
    await eventually(lambda: failed_turn(db_sessions), what="the turn to fail")
    page = await open_conversation(browser, live_receiver, token)
    for attempt in (1, 2):
        failure = page.locator(".failure", has_text="Turn failed")
        await expect(failure).to_contain_text("model API 400")
        if attempt == 1:
            fake_openai.failures.append(Failure(400))
        await failure.get_by_role("button", name="Retry").click()
        await expect(page.locator(".notice")).to_contain_text("Retrying")
        await eventually(lambda: all_answered(db_sessions), what="the retried turn to end")
        await page.reload()
    sent = await at_least(fake_twilio.messages, 2, what="the fallback and the answer")
    assert sent[-1]["Body"] == "You said: Order bread"
    users = page.locator("#entries .bubble.user")
    await expect(users).to_have_count(1)
    await expect(users).to_contain_text("Order bread")
    attempts = page.locator(".attempts")
    await expect(attempts).to_have_count(1)
    await expect(attempts).to_contain_text("failed twice: model API 400")
    await expect(attempts).to_contain_text("then replied")
    await expect(page.locator(".failure", has_text="Turn failed")).to_have_count(0)
    await page.screenshot(path=ARTIFACTS / "retried-turn-attempts.png", full_page=True)
    await page.context.close()


async def test_why_a_reply_was_not_delivered_is_on_the_page(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    """A real status callback (Twilio's form, signed) says the reply was undelivered with
    63024; a later reply Twilio refuses with 63016 (outside the 24-hour window) is a turn
    that retrying cannot fix, which offers a template instead."""
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    await whatsapp(live_receiver, "Hello")
    [reply] = await at_least(fake_twilio.messages, 1, what="the bot's reply")
    undelivered = {
        **fixture_form("status_delivered.txt"),
        "EventType": "UNDELIVERED",
        "SmsStatus": "undelivered",
        "MessageStatus": "undelivered",
        "ErrorCode": "63024",
        "MessageSid": reply["sid"],
        "SmsSid": reply["sid"],
        "From": reply["From"],
    }
    async with httpx.AsyncClient() as client:
        status = await post_signed(client, f"{live_receiver}/webhooks/twilio/status", undelivered)
    assert status.status_code == 200
    page = await open_conversation(browser, live_receiver, token)
    assistant = page.locator(".entry-assistant").last
    await expect(assistant.locator(".tick")).to_have_text("⚠ undelivered")
    await expect(page.locator(".undelivered")).to_have_text(
        "⚠ Not delivered: 63024 Invalid message recipient"
    )
    await expect(page.locator(".advice")).to_contain_text(
        "Retrying cannot fix this: the recipient cannot receive WhatsApp messages"
    )
    await expect(page.locator("#attention")).to_have_text("Needs attention: undelivered")
    await page.screenshot(path=ARTIFACTS / "undelivered-reply.png", full_page=True)

    fake_twilio.failures.append((400, 63016))
    await whatsapp(live_receiver, "Are you there?")
    await eventually(lambda: failed_turn(db_sessions), what="the refused turn to fail")
    await eventually(lambda: all_answered(db_sessions), what="the worker to finish")
    await page.reload()
    failure = page.locator(".failure", has_text="Turn failed")
    await expect(failure).to_contain_text("63016")
    await expect(failure.get_by_role("button", name="Retry")).to_have_count(0)
    advice = page.locator(".advice").last
    await expect(advice).to_contain_text("the user last wrote more than 24 hours ago")
    await expect(advice.get_by_role("link", name="Send a template instead.")).to_have_attribute(
        "href", "#template"
    )
    await expect(page.locator("#attention")).to_contain_text("failed turn")
    await page.context.close()


async def test_clearing_the_memory_keeps_the_transcript_archived(
    browser: Browser,
    db_sessions: async_sessionmaker[AsyncSession],
    live_receiver: str,
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
) -> None:
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    await whatsapp(live_receiver, "Remember my name is Ada")
    await at_least(fake_twilio.messages, 1, what="the bot's reply")
    await eventually(lambda: all_answered(db_sessions), what="the turn to finish")
    page = await open_conversation(browser, live_receiver, token)
    await page.get_by_label(re.compile("I understand the agent forgets")).check()
    await page.get_by_role("button", name="Clear memory").click()
    await expect(page.locator(".notice")).to_contain_text("The transcript is archived")
    await expect(page.locator("#entries .bubble")).to_have_count(0)
    archive = page.locator("details.archive")
    await expect(archive.locator("summary")).to_contain_text("Earlier, cleared on")
    await archive.locator("summary").click()
    await expect(archive.locator(".bubble.user")).to_contain_text("Remember my name is Ada")
    await expect(archive.locator(".bubble.assistant")).to_contain_text("You said:")
    await page.screenshot(path=ARTIFACTS / "cleared-memory-archive.png", full_page=True)

    await whatsapp(live_receiver, "What is my name?")
    await at_least(fake_twilio.messages, 2, what="the answer after clearing")
    users = [
        content_text(item.get("content"))
        for item in fake_openai.requests[-1]["input"]
        if item.get("role") == "user"
    ]
    assert users == ["What is my name?"]  # the agent forgot; the page did not
    await page.context.close()


async def test_a_waiting_message_is_placed_by_its_arrival_time(
    browser: Browser, db_sessions: async_sessionmaker[AsyncSession], receiver: str
) -> None:
    """A message that arrived while the answer before it was being written is shown
    between the question and that answer, not after everything stored."""
    builder = await builder_with_channel(db_sessions)
    token = await builder_token(db_sessions, builder)
    session_id = await stored_session(
        db_sessions,
        builder,
        [{"role": "user", "content": "First"}, {"role": "assistant", "content": "Answer"}],
    )
    inbound = await arrive(db_sessions, await channel_at(db_sessions, BOT_NUMBER), "Meanwhile")
    async with db_sessions.begin() as db:
        question, answer = await db.scalars(
            select(SessionItem)
            .where(SessionItem.session_id == session_id)
            .order_by(SessionItem.sequence)
        )
        answer.created_at = question.created_at + timedelta(seconds=10)
        message = await db.get(InboundMessage, inbound)
        assert message is not None
        message.session_id = session_id
        message.received_at = question.created_at + timedelta(seconds=5)
    page = await signed_in(browser, receiver, token)
    await page.goto(f"/sessions/{session_id}")
    shown = page.locator("#conversation .bubble .text")
    await expect(shown).to_have_text(["First", "Meanwhile", "Answer"])
    await expect(page.locator("#waiting-count")).to_have_text("1 waiting")
    async with db_sessions.begin() as db:  # nobody will answer it: no worker reads this queue
        message = await db.get(InboundMessage, inbound)
        assert message is not None
        message.status = "processed"
    await page.context.close()
