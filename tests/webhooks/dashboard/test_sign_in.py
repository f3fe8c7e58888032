"""Signing out ends a sign-in on the server: a copy of the cookie taken before is
refused. The cookie holds only a random secret (nothing derived from a token), and a new
ADMIN_TOKEN still signs every admin out."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import DashboardSignIn
from tests.conftest import ADMIN_TOKEN
from tests.webhooks.dashboard.conftest import World, browser_signed_in
from webhooks.dashboard.dashboard_app import COOKIE_NAME


def cookie_contents(cookie: str) -> dict[str, object]:
    """What the signed cookie carries (signed, not encrypted: anyone can read it)."""
    data = cookie.split(".")[0]
    return dict(json.loads(base64.b64decode(data + "=" * (-len(data) % 4))))


async def test_a_cookie_replayed_after_signing_out_is_refused(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    sessions_page = f"/builders/{world.builder}"
    async with httpx.AsyncClient(base_url=receiver) as browser:
        csrf = await browser_signed_in(browser, ADMIN_TOKEN)
        cookie = browser.cookies[COOKIE_NAME]
        assert (await browser.get(sessions_page)).status_code == 200
        signed_out = await browser.post("/logout", data={"csrf_token": csrf})
        assert signed_out.status_code == 303
    async with httpx.AsyncClient(base_url=receiver, cookies={COOKIE_NAME: cookie}) as replay:
        replayed = await replay.get(sessions_page)
    assert replayed.status_code == 401 and 'name="token"' in replayed.text
    async with db_sessions() as db:
        [row] = await db.scalars(select(DashboardSignIn))
    assert row.revoked_at is not None


async def test_the_cookie_carries_a_random_secret_and_the_table_only_its_hash(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    carried = []
    for token in (ADMIN_TOKEN, world.token):
        async with httpx.AsyncClient(base_url=receiver) as browser:
            await browser_signed_in(browser, token)
            carried.append(cookie_contents(browser.cookies[COOKIE_NAME]))
    async with db_sessions() as db:
        rows = list(await db.scalars(select(DashboardSignIn).order_by(DashboardSignIn.created_at)))
    assert [sorted(contents) for contents in carried] == [["csrf", "sign_in"]] * 2
    secrets = [str(contents["sign_in"]) for contents in carried]
    assert len(set(secrets)) == 2 and all(len(secret) >= 43 for secret in secrets)
    stored = {value for row in rows for value in vars(row).values() if isinstance(value, str)}
    assert not stored & set(secrets)
    assert [(row.builder_id, row.token_id is None) for row in rows] == [
        (None, True),
        (world.builder, False),
    ]


async def test_a_new_admin_token_signs_every_admin_out(
    world: World, make_receiver: Callable[..., str]
) -> None:
    before = make_receiver()
    after = make_receiver(ADMIN_TOKEN="a-brand-new-admin-token-42")
    async with httpx.AsyncClient(base_url=before) as browser:
        await browser_signed_in(browser, ADMIN_TOKEN)
        cookie = browser.cookies[COOKIE_NAME]
    for receiver, status in ((after, 401), (before, 200)):
        async with httpx.AsyncClient(base_url=receiver, cookies={COOKIE_NAME: cookie}) as replay:
            assert (await replay.get("/builders")).status_code == status
