"""The 24-hour window over HTTP: shown on the conversation page, a free-form reply
refused outside it (409 with the reason, from the form and the JSON API, nothing sent),
and an approved template sent instead."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import InboundMessage, MessageTemplate
from db.reply_window import CLOSED_REASON
from db.templates import TemplateRow, store_templates
from tests.factories import USER_NUMBER
from tests.fakes.twilio import FakeTwilio
from tests.webhooks.dashboard.conftest import World

CONTENT_SID = "HX" + "c" * 32
BODY = "Hi {{1}}, your table for {{2}} is confirmed."


async def closed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as db:
        await db.execute(
            update(InboundMessage).values(received_at=datetime.now(UTC) - timedelta(hours=25))
        )


async def a_template(sessions: async_sessionmaker[AsyncSession], world: World) -> str:
    async with sessions.begin() as db:
        row = TemplateRow("table_confirmed", "en", "APPROVED", BODY, content_sid=CONTENT_SID)
        await store_templates(world.builder, "twilio", [row], db=db)
        found = await db.scalar(select(MessageTemplate.id))
    return str(found)


async def test_the_page_shows_the_window_open_then_closed_with_the_templates(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    await a_template(db_sessions, world)
    async with httpx.AsyncClient(base_url=receiver, headers=world.headers("builder")) as client:
        open_page = await client.get(f"/sessions/{world.session}")
        await closed(db_sessions)
        closed_page = await client.get(f"/sessions/{world.session}")

    assert "24-hour window open: 23 h 59 min left for free-form replies" in open_page.text
    assert "24-hour window closed since" in closed_page.text
    assert 'only an approved <a href="#template">template</a> reaches this user' in (
        closed_page.text
    )
    assert 'id="template"' in closed_page.text
    assert "Send template table_confirmed" in closed_page.text
    assert closed_page.text.count('name="variable"') == 2


async def test_a_free_form_reply_outside_the_window_is_refused_with_the_reason(
    receiver: str,
    world: World,
    db_sessions: async_sessionmaker[AsyncSession],
    fake_twilio: FakeTwilio,
) -> None:
    await closed(db_sessions)
    async with httpx.AsyncClient(base_url=receiver, headers=world.headers("builder")) as client:
        form = await client.post(f"/sessions/{world.session}/reply", data={"text": "Still there?"})
        api = await client.post(f"/api/sessions/{world.session}/reply", json={"text": "Hello?"})

    assert form.status_code == 409 and CLOSED_REASON in html.unescape(form.text)
    assert api.status_code == 409
    assert api.json() == {"error": f"Reply not sent: {CLOSED_REASON}"}
    assert fake_twilio.messages == []


async def test_an_approved_template_is_sent_from_the_api(
    receiver: str,
    world: World,
    db_sessions: async_sessionmaker[AsyncSession],
    fake_twilio: FakeTwilio,
) -> None:
    await closed(db_sessions)
    template_id = await a_template(db_sessions, world)
    fake_twilio.contents[CONTENT_SID] = BODY
    fake_twilio.closed_windows.add(USER_NUMBER)
    url = f"/api/sessions/{world.session}/template"
    async with httpx.AsyncClient(base_url=receiver, headers=world.headers("builder")) as client:
        short = await client.post(url, json={"template_id": template_id, "variables": ["Ada"]})
        other = await client.post(
            url,
            json={"template_id": template_id, "variables": ["Ada", "4"]},
            headers=world.headers("other"),
        )
        sent = await client.post(url, json={"template_id": template_id, "variables": ["Ada", "4"]})
        items = await client.get(f"/api/sessions/{world.session}/items")

    assert short.status_code == 400
    assert short.json() == {"error": "template 'table_confirmed' takes 2 variable(s), got 1"}
    assert other.status_code == 404
    assert sent.status_code == 200, sent.text
    assert sent.json()["sent"] is True
    [message] = fake_twilio.messages
    assert (message["ContentSid"], message["ContentVariables"]) == (
        CONTENT_SID,
        json.dumps({"1": "Ada", "2": "4"}),
    )
    shown = "Hi Ada, your table for 4 is confirmed."
    assert items.json()["items"][-1]["text"] == shown
