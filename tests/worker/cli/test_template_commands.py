"""`wabot template …`: Meta's templates read from the business account through the
(fake) Graph API, page by page, listed and stored; Twilio's added by ContentSid. Real
processes on Postgres."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import MessageTemplate
from tests.conftest import Wabot
from tests.fakes import meta
from tests.fakes.meta import FakeGraphAPI
from tests.worker.cli.test_builder_commands import create

PHONE_NUMBER_ID = "106540352242922"
CONTENT_SID = "HX" + "0123456789abcdef" * 2


def graph_env(url: str) -> dict[str, str]:
    return {
        "META_ACCESS_TOKEN": meta.ACCESS_TOKEN,
        "META_API_BASE_URL": url,
        "META_API_VERSION": meta.API_VERSION,
        "META_BUSINESS_ACCOUNT_ID": meta.BUSINESS_ACCOUNT_ID,
    }


def listed(name: str, status: str = "APPROVED", body: str = "Hi {{1}}!") -> dict[str, object]:
    return {
        "name": name,
        "language": "en_US",
        "status": status,
        "category": "UTILITY",
        "id": f"9{len(name)}",
        "components": [
            {"type": "HEADER", "format": "TEXT", "text": "Corner Shop"},
            {"type": "BODY", "text": body},
            {"type": "FOOTER", "text": "Reply STOP to opt out"},
        ],
    }


async def stored(sessions: async_sessionmaker[AsyncSession]) -> list[tuple[str, ...]]:
    async with sessions() as db:
        rows = await db.scalars(select(MessageTemplate).order_by(MessageTemplate.name))
        return [
            (row.provider, row.name, row.language, row.status, row.body, row.content_sid or "")
            for row in rows
        ]


async def test_sync_stores_every_page_of_the_business_account_s_templates(
    wabot: Wabot,
    db_sessions: async_sessionmaker[AsyncSession],
    fake_graph: FakeGraphAPI,
    fake_graph_server: tuple[FakeGraphAPI, str],
) -> None:
    builder_id = create(wabot)
    assert (
        wabot(
            "channel", "add", builder_id, "--provider", "meta", "--address", PHONE_NUMBER_ID
        ).returncode
        == 0
    )
    fake_graph.templates.extend(listed(f"t{number:03d}") for number in range(120))
    fake_graph.templates.append(listed("promo", status="REJECTED", body="Sale!"))
    env = graph_env(fake_graph_server[1])

    synced = wabot("template", "sync", builder_id, env=env)

    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.strip() == "synced 121 Meta template(s), 120 approved"
    assert [page.get("after") for page in fake_graph.template_pages] == [None, "100"]
    assert fake_graph.template_pages[0]["fields"] == "name,language,status,components"
    rows = await stored(db_sessions)
    assert len(rows) == 121
    assert rows[0] == ("meta", "promo", "en_US", "REJECTED", "Sale!", "")
    assert rows[1] == ("meta", "t000", "en_US", "APPROVED", "Hi {{1}}!", "")

    fake_graph.templates[0] = listed("t000", body="Hello {{1}}, welcome back.")
    assert wabot("template", "sync", builder_id, env=env).returncode == 0
    assert (await stored(db_sessions))[1][4] == "Hello {{1}}, welcome back."  # updated
    assert len(await stored(db_sessions)) == 121


async def test_list_shows_meta_s_templates_and_whether_they_are_stored(
    wabot: Wabot,
    fake_graph: FakeGraphAPI,
    fake_graph_server: tuple[FakeGraphAPI, str],
) -> None:
    builder_id = create(wabot)
    wabot("channel", "add", builder_id, "--provider", "meta", "--address", PHONE_NUMBER_ID)
    fake_graph.templates.append(listed("order_ready", body="Hi {{1}}, order {{2}} is ready."))
    env = graph_env(fake_graph_server[1])

    before = wabot("template", "list", builder_id, "--json", env=env)
    wabot("template", "sync", builder_id, env=env)
    text = wabot("template", "list", builder_id, env=env)

    assert json.loads(before.stdout) == [
        {
            "provider": "meta",
            "name": "order_ready",
            "language": "en_US",
            "status": "APPROVED",
            "body": "Hi {{1}}, order {{2}} is ready.",
            "stored": False,
        }
    ]
    assert text.stdout.strip() == (
        "meta  order_ready  en_US  APPROVED  'Hi {{1}}, order {{2}} is ready.'"
    )


async def test_meta_commands_say_what_is_missing(
    wabot: Wabot, fake_graph_server: tuple[FakeGraphAPI, str]
) -> None:
    builder_id = create(wabot)
    no_meta = wabot("template", "sync", builder_id, env=graph_env(fake_graph_server[1]))
    wabot("channel", "add", builder_id, "--provider", "meta", "--address", PHONE_NUMBER_ID)
    env = {**graph_env(fake_graph_server[1]), "META_BUSINESS_ACCOUNT_ID": ""}
    no_account = wabot("template", "sync", builder_id, env=env)
    wrong_account = wabot(
        "template", "list", builder_id, "--business-account-id", "123456789", env=env
    )

    assert no_meta.stderr.strip() == f"Error: builder {builder_id} has no Meta number"
    assert no_account.returncode == 2
    assert "give --business-account-id or set META_BUSINESS_ACCOUNT_ID" in no_account.stderr
    assert wrong_account.stderr.strip() == (
        "Error: could not read the templates: Meta HTTP 400 (code 100): "
        "Unsupported get request. Object does not exist"
    )


async def test_add_stores_a_twilio_content_template(
    wabot: Wabot, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    builder_id = create(wabot)
    added = wabot(
        "template", "add", builder_id,
        "--content-sid", CONTENT_SID,
        "--name", "order_ready",
        "--body", "Hi {{1}}, order {{2}} is ready.",
    )  # fmt: skip
    wrong = wabot(
        "template", "add", builder_id, "--content-sid", "HX12", "--name", "x", "--body", "y"
    )

    assert added.stdout.strip() == "added Twilio template order_ready (en)"
    assert await stored(db_sessions) == [
        ("twilio", "order_ready", "en", "APPROVED", "Hi {{1}}, order {{2}} is ready.", CONTENT_SID)
    ]
    assert wrong.returncode == 2
    assert "a Content SID is HX followed by 32 hexadecimal digits" in wrong.stderr
