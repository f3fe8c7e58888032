"""Managing builders in the dashboard over HTTP: only the admin creates and deletes
builders, a builder's token changes its own builder only, numbers, documents and tokens
go through the CLI's `db` functions, and a refused form says why on the page (never a
500). Charts show the activity as SVG with its numbers as text."""

from __future__ import annotations

import re
import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import channels_of, get_builder, update_builder
from db.core.credentials import CredentialsCipher, MetaCredentials, TwilioCredentials
from db.document_store import documents_of, search_documents
from db.models import Builder
from tests.factories import CREDENTIALS_KEY, FIXTURES
from tests.webhooks.dashboard.conftest import World, browser_signed_in, csrf_of

ORDER_PDF = (FIXTURES / "media" / "order.pdf").read_bytes()
ACCOUNT_SID = "AC" + "1234abcd" * 4
SETTINGS = {
    "name": "Corner Bakery",
    "instructions": "You answer for the corner bakery.",
    "model": "gpt-4.1-mini",
    "temperature": "0.3",
    "max_tokens": "300",
    "history_window": "12",
    "turns_per_minute": "5",
    "unsupported_reply": "Please write to us.",
    "fallback_reply": "We will call you back.",
    "reactions_as_input": "on",
    "voice_replies": "on",
}


async def builder_count(db_sessions: async_sessionmaker[AsyncSession]) -> int:
    async with db_sessions() as db:
        return int(await db.scalar(select(func.count()).select_from(Builder)) or 0)


async def test_only_the_admin_creates_a_builder_with_every_setting(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
        refused = await client.post("/builders", data=SETTINGS, headers=world.headers("builder"))
        assert refused.status_code == 403
        assert await builder_count(db_sessions) == 2
        created = await client.post("/builders", data=SETTINGS, headers=world.headers("admin"))
        assert created.status_code == 303
        found = re.fullmatch(r"/builders/([0-9a-f-]{36})/settings\?.*", created.headers["location"])
        assert found is not None
        shown = await client.get(created.headers["location"], headers=world.headers("admin"))
    assert shown.status_code == 200
    assert "Builder Corner Bakery created." in shown.text
    async with db_sessions() as db:
        builder = await get_builder(uuid.UUID(found.group(1)), db=db)
    assert builder is not None
    assert (
        builder.name,
        builder.instructions,
        builder.model,
        builder.temperature,
        builder.max_tokens,
        builder.history_window,
        builder.turns_per_minute,
        builder.unsupported_reply,
        builder.fallback_reply,
        builder.reactions_as_input,
        builder.voice_replies,
    ) == (
        "Corner Bakery",
        "You answer for the corner bakery.",
        "gpt-4.1-mini",
        0.3,
        300,
        12,
        5,
        "Please write to us.",
        "We will call you back.",
        True,
        True,
    )


async def test_a_refused_builder_form_says_why_next_to_each_field(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    wrong = {
        **SETTINGS,
        "name": " ",
        "temperature": "3",
        "max_tokens": "many",
        "history_window": str(2**40),
    }
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
        created = await client.post("/builders", data=wrong, headers=world.headers("admin"))
        edited = await client.post(
            f"/builders/{world.builder}/settings",
            data={**SETTINGS, "name": "x" * 201, "fallback_reply": "a\x00b"},
            headers=world.headers("builder"),
        )
    assert created.status_code == 400
    assert "Name must not be empty." in created.text
    assert "Temperature must be between 0 and 2." in created.text
    assert "Max tokens must be a whole number (or empty for the default)." in created.text
    assert "History window must be between 0 and 2147483647." in created.text
    assert "You answer for the corner bakery." in created.text  # what was typed stays
    assert await builder_count(db_sessions) == 2
    assert edited.status_code == 400
    assert "Name must be at most 200 characters." in edited.text
    assert "Fallback reply must not contain NUL (U+0000)." in edited.text
    async with db_sessions() as db:
        builder = await get_builder(world.builder, db=db)
    assert builder is not None and builder.name == "Test Bakery"


async def test_a_builder_edits_its_own_builder_only_and_empty_means_default(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
        other = await client.post(
            f"/builders/{world.other_builder}/settings",
            data=SETTINGS,
            headers=world.headers("builder"),
        )
        other_page = await client.get(
            f"/builders/{world.other_builder}/settings", headers=world.headers("builder")
        )
        own = await client.post(
            f"/builders/{world.builder}/settings",
            data={**SETTINGS, "temperature": "", "max_tokens": "", "voice_replies": ""},
            headers=world.headers("builder"),
        )
        delete = await client.post(
            f"/builders/{world.builder}/delete",
            data={"confirm": "yes"},
            headers=world.headers("builder"),
        )
    assert (other.status_code, other_page.status_code) == (404, 404)
    assert own.status_code == 303
    assert delete.status_code == 403
    async with db_sessions() as db:
        untouched = await get_builder(world.other_builder, db=db)
        edited = await get_builder(world.builder, db=db)
    assert untouched is not None and untouched.name == "Test Bakery"
    assert edited is not None
    assert (edited.name, edited.temperature, edited.max_tokens, edited.voice_replies) == (
        "Corner Bakery",
        None,
        None,
        False,
    )


async def test_numbers_with_their_own_encrypted_credentials_and_who_holds_a_number(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    numbers = f"/builders/{world.builder}/numbers"
    taken = "whatsapp:+14155230000"  # the other builder's
    async with db_sessions.begin() as db:
        await update_builder(world.other_builder, {"name": "Rival Bakery"}, db=db)
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
        added = await client.post(
            numbers,
            data={
                "provider": "twilio",
                "address": "+1 415 555 0177",
                "account_sid": ACCOUNT_SID,
                "auth_token": "own-secret-token",
            },
            headers=world.headers("builder"),
        )
        meta = await client.post(
            numbers,
            data={"provider": "meta", "address": "1065403522", "app_secret": "own-app-secret"},
            headers=world.headers("builder"),
        )
        page = await client.get(
            f"/builders/{world.builder}/settings", headers=world.headers("builder")
        )
        as_builder = await client.post(
            numbers, data={"provider": "twilio", "address": taken}, headers=world.headers("builder")
        )
        as_admin = await client.post(
            numbers, data={"provider": "twilio", "address": taken}, headers=world.headers("admin")
        )
        malformed = await client.post(
            numbers,
            data={"provider": "twilio", "address": "+1415"},
            headers=world.headers("builder"),
        )
        mixed = await client.post(
            numbers,
            data={"provider": "meta", "address": "1065403522", "auth_token": "x"},
            headers=world.headers("builder"),
        )
        half = await client.post(
            numbers,
            data={"provider": "twilio", "address": "+14155550178", "account_sid": ACCOUNT_SID},
            headers=world.headers("builder"),
        )
        async with db_sessions() as db:
            others = await channels_of(world.other_builder, db=db)
        not_mine = await client.post(
            f"{numbers}/{others[0].id}/remove", headers=world.headers("builder")
        )
    assert (added.status_code, meta.status_code) == (303, 303)
    assert "own (AC…abcd)" in page.text and "own-secret-token" not in page.text
    assert "own-app-secret" not in page.text
    assert as_builder.status_code == 409
    assert "That number cannot be added: it is not available." in as_builder.text
    assert "Rival" not in as_builder.text and "already routed" not in as_builder.text
    assert as_admin.status_code == 409
    assert "That number is already routed to builder Rival Bakery." in as_admin.text
    assert malformed.status_code == 400
    assert "&#39;whatsapp:+1415&#39; is not a WhatsApp number" in malformed.text
    assert mixed.status_code == 400 and "A Meta number takes" in mixed.text
    assert half.status_code == 400 and "Give both the account SID and its auth token" in half.text
    assert not_mine.status_code == 404
    async with db_sessions() as db:
        channels = {channel.address: channel for channel in await channels_of(world.builder, db=db)}
        assert len(await channels_of(world.other_builder, db=db)) == 1
    own = channels["whatsapp:+14155550177"]
    assert own.credentials is not None and "own-secret-token" not in own.credentials
    assert CredentialsCipher(CREDENTIALS_KEY).decrypt("twilio", own.credentials) == (
        TwilioCredentials(account_sid=ACCOUNT_SID, auth_token="own-secret-token")
    )
    stored_meta = channels["1065403522"].credentials
    assert stored_meta is not None
    assert CredentialsCipher(CREDENTIALS_KEY).decrypt("meta", stored_meta) == MetaCredentials(
        app_secret="own-app-secret"
    )
    assert set(channels) == {"whatsapp:+14155238886", "whatsapp:+14155550177", "1065403522"}


async def test_documents_are_uploaded_read_as_the_cli_reads_them_and_removed(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    upload = f"/builders/{world.builder}/documents"
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
        stored = await client.post(
            upload, files={"file": ("order.pdf", ORDER_PDF)}, headers=world.headers("builder")
        )
        intruder = await client.post(
            upload, files={"file": ("order.pdf", ORDER_PDF)}, headers=world.headers("other")
        )
        wrong_type = await client.post(
            upload, files={"file": ("tool.exe", b"MZ")}, headers=world.headers("builder")
        )
        damaged = await client.post(
            upload,
            files={"file": ("broken.pdf", b"%PDF-1.4\nnot really")},
            headers=world.headers("builder"),
        )
        page = await client.get(
            f"/builders/{world.builder}/settings", headers=world.headers("builder")
        )
        async with db_sessions() as db:
            found = await search_documents(world.builder, "pickup saturday", db=db)
        removed = await client.post(
            f"{upload}/remove", data={"name": "order.pdf"}, headers=world.headers("builder")
        )
    assert stored.status_code == 303
    assert intruder.status_code == 404
    assert wrong_type.status_code == 400 and "tool.exe: unsupported file type" in wrong_type.text
    assert damaged.status_code == 400 and "broken.pdf: not a readable PDF" in damaged.text
    assert "order.pdf" in page.text
    assert [passage.source for passage in found] == ["order.pdf"]
    assert "Pickup on Saturday at 10:00" in found[0].text
    assert removed.status_code == 303
    async with db_sessions() as db:
        assert await documents_of(world.builder, db=db) == []
        assert await documents_of(world.other_builder, db=db) == []


async def test_a_token_made_in_the_browser_works_once_shown_and_is_revoked(
    receiver: str, world: World
) -> None:
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as browser:
        csrf = await browser_signed_in(browser, world.token)
        without_csrf = await browser.post(f"/builders/{world.builder}/tokens", data={"name": "ci"})
        made = await browser.post(
            f"/builders/{world.builder}/tokens", data={"name": "ci", "csrf_token": csrf}
        )
        secret = re.search(r"wbt_[A-Za-z0-9_-]+", made.text)
        assert secret is not None
        bearer = {"Authorization": f"Bearer {secret.group(0)}"}
        works = await browser.get(f"/builders/{world.builder}", headers=bearer)
        listed = await browser.get(f"/builders/{world.builder}/settings")
        assert secret.group(0) not in listed.text  # shown once only
        token_ids = re.findall(r"/tokens/([0-9a-f-]{36})/revoke", listed.text)
        other_revoke = await browser.post(
            f"/builders/{world.other_builder}/tokens/{token_ids[-1]}/revoke",
            data={"csrf_token": csrf_of(listed)},
        )
        revoked = await browser.post(
            f"/builders/{world.builder}/tokens/{token_ids[-1]}/revoke",
            data={"csrf_token": csrf_of(listed)},
        )
        refused = await browser.get(f"/builders/{world.builder}", headers=bearer)
    assert without_csrf.status_code == 403
    assert made.status_code == 200 and "shown this once only" in made.text
    assert works.status_code == 200
    assert other_revoke.status_code == 404
    assert revoked.status_code == 303
    assert refused.status_code == 401


async def test_the_charts_draw_the_activity_with_its_numbers_as_text(
    receiver: str, world: World
) -> None:
    async with httpx.AsyncClient(base_url=receiver, timeout=30) as client:
        builder_page = await client.get(
            f"/builders/{world.builder}/settings", headers=world.headers("builder")
        )
        overview = await client.get("/builders", headers=world.headers("admin"))
    for page in (builder_page, overview):
        assert page.status_code == 200
        svgs = re.findall(r"<svg .*?</svg>", page.text, re.DOTALL)
        assert len(svgs) == 4
        for svg in svgs:
            assert 'role="img"' in svg and "<title id=" in svg and "<desc id=" in svg
        today = re.search(
            r"<tr><td>(\d{4}-\d\d-\d\d)</td>((?:<td[^>]*>[^<]*</td>)+)</tr>\s*</tbody>", page.text
        )
        assert today is not None
        cells = re.findall(r">([^<]*)</td>", today.group(2))
        # The world's conversation today: two questions, two answers, one failed turn.
        assert cells[:3] == ["4", "1", "1"], cells
    assert 'aria-label="' + today.group(1) + ': 4"' in builder_page.text
