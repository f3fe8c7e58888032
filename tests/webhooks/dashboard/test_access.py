"""Every dashboard page and API route refuses by default: no token → 401, another
builder's ids → 404, the admin sees everything; tokens are stored hashed and revocable;
forms signed in by cookie need the CSRF token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import ApiToken
from db.tokens import revoke_token
from tests.conftest import ADMIN_TOKEN
from tests.fakes.server import free_port
from tests.fakes.twilio import FakeTwilio
from tests.webhooks.dashboard.conftest import World
from webhooks.dashboard.dashboard_app import ROUTES

WHO = ("none", "other", "builder", "admin")
NO_TEMPLATE = "00000000-0000-4000-8000-000000000000"
"""No template of anyone's: the builder and the admin get "no such template"."""

# (method, path, form or JSON body, expected status for none / other / builder / admin),
# run in that order against one world.
MATRIX: list[tuple[str, str, dict[str, str] | None, tuple[int, int, int, int]]] = [
    ("GET", "/", None, (401, 303, 303, 303)),
    ("GET", "/builders", None, (401, 403, 403, 200)),
    ("GET", "/builders/{builder}", None, (401, 404, 200, 200)),
    ("GET", "/builders/{builder}/chat", None, (401, 404, 200, 200)),
    ("GET", "/sessions/{session}", None, (401, 404, 200, 200)),
    ("GET", "/sessions/{session}/entries", None, (401, 404, 200, 200)),
    ("GET", "/sessions/{session}/updates", None, (401, 404, 200, 200)),
    ("POST", "/sessions/{session}/pause", {}, (401, 404, 303, 303)),
    ("POST", "/sessions/{session}/resume", {}, (401, 404, 303, 303)),
    ("POST", "/sessions/{session}/reply", {"text": "A human here."}, (401, 404, 303, 303)),
    ("POST", "/sessions/{session}/clear", {"confirm": "yes"}, (401, 404, 303, 303)),
    ("POST", "/sessions/{session}/template", {"template_id": NO_TEMPLATE}, (401, 404, 404, 404)),
    ("POST", "/sessions/{session}/turns/{turn}/retry", {}, (401, 404, 303, 409)),
    ("GET", "/media/{media}", None, (401, 404, 200, 200)),
    ("GET", "/api/openapi.json", None, (401, 200, 200, 200)),
    ("GET", "/api/builders/{builder}/sessions", None, (401, 404, 200, 200)),
    ("GET", "/api/sessions/{session}/items", None, (401, 404, 200, 200)),
    ("POST", "/api/sessions/{session}/reply", {"text": "A human here."}, (401, 404, 200, 200)),
    (
        "POST",
        "/api/sessions/{session}/template",
        {"template_id": NO_TEMPLATE},
        (401, 404, 404, 404),
    ),
    (
        "POST",
        "/api/chat/{builder}",
        {"conversation_id": "matrix", "message": "hi", "stream": False},  # type: ignore[dict-item]
        (401, 404, 200, 200),
    ),
    ("POST", "/builders", {"name": "New", "instructions": "Help."}, (401, 403, 403, 303)),
    ("GET", "/builders/{builder}/settings", None, (401, 404, 200, 200)),
    (
        "POST",
        "/builders/{builder}/settings",
        {"name": "Renamed", "instructions": "Help."},
        (401, 404, 303, 303),
    ),
    (
        "POST",
        "/builders/{builder}/numbers",
        {"provider": "twilio", "address": "+14155550199"},
        (401, 404, 303, 409),  # the admin's second try: routed to this builder already
    ),
    ("POST", "/builders/{builder}/numbers/{channel}/remove", {}, (401, 404, 303, 404)),
    ("POST", "/builders/{builder}/documents", {}, (401, 404, 400, 400)),  # no file
    ("POST", "/builders/{builder}/documents/remove", {"name": "x.txt"}, (401, 404, 404, 404)),
    ("POST", "/builders/{builder}/tokens", {"name": "ci"}, (401, 404, 200, 200)),
    ("POST", "/builders/{builder}/tokens/{token}/revoke", {}, (401, 404, 404, 404)),
    ("POST", "/builders/{builder}/delete", {"confirm": "yes"}, (401, 404, 403, 303)),
    ("POST", "/logout", {}, (401, 303, 303, 303)),
    ("GET", "/login", None, (200, 200, 200, 200)),
    ("GET", "/static/app.css", None, (200, 200, 200, 200)),
    ("GET", "/no/such/page", None, (401, 404, 404, 404)),
    ("GET", "/webhooks/twilio", None, (405, 405, 405, 405)),  # a webhook's, not ours
]


def _template(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: "{" + m.group(1).removesuffix("_id") + "}", path)


def test_the_matrix_covers_every_dashboard_route() -> None:
    routes = {
        (method, _template(route.path))
        for route in ROUTES
        if hasattr(route, "methods") and route.methods
        for method in route.methods
        if method != "HEAD"
    }
    covered = {(method, path) for method, path, _, _ in MATRIX}
    assert routes - covered - {("POST", "/login")} == set()


@pytest.mark.parametrize(("method", "path", "body", "expected"), MATRIX, ids=lambda v: str(v))
async def test_auth_matrix(
    receiver: str,
    world: World,
    fake_twilio: FakeTwilio,
    method: str,
    path: str,
    body: dict[str, str] | None,
    expected: tuple[int, int, int, int],
) -> None:
    url = receiver + path.format(
        builder=world.builder,
        session=world.session,
        turn=world.failed_turn,
        media=world.media,
        channel=world.channel,
        token=uuid.uuid4(),  # nobody's: revoking a real one is `test_manage`'s
    )
    got = []
    async with httpx.AsyncClient(timeout=30) as client:
        for who in WHO:
            kwargs: dict[str, object] = {"headers": world.headers(who)}
            if body is not None:
                kwargs["json" if path.startswith("/api/") else "data"] = body
            response = await client.request(method, url, **kwargs)  # type: ignore[arg-type]
            got.append(response.status_code)
            if response.status_code == 401:
                assert response.headers["www-authenticate"] == "Bearer"
    assert tuple(got) == expected


async def test_api_errors_are_json_and_pages_are_html(receiver: str, world: World) -> None:
    async with httpx.AsyncClient() as client:
        api = await client.get(f"{receiver}/api/builders/{world.builder}/sessions")
        page = await client.get(f"{receiver}/builders/{world.builder}")
        other = await client.get(
            f"{receiver}/api/sessions/{world.session}/items", headers=world.headers("other")
        )
    assert api.status_code == 401 and api.json() == {
        "error": "sign in or send Authorization: Bearer"
    }
    assert page.status_code == 401 and 'name="token"' in page.text  # the sign-in form
    assert other.status_code == 404 and other.json() == {"error": "no such session"}


async def test_a_wrong_or_revoked_token_is_refused(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    url = f"{receiver}/api/builders/{world.builder}/sessions"
    async with httpx.AsyncClient() as client:
        wrong = await client.get(url, headers={"Authorization": "Bearer wbt_not-a-token"})
        admin_typo = await client.get(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}x"})
        assert (await client.get(url, headers=world.headers("builder"))).status_code == 200
        async with db_sessions.begin() as db:
            rows = list(await db.scalars(select(ApiToken)))
            assert all(world.token not in row.token_hash for row in rows)  # stored hashed
            for row in rows:
                await revoke_token(row.id, db=db)
        revoked = await client.get(url, headers=world.headers("builder"))
    assert (wrong.status_code, admin_typo.status_code, revoked.status_code) == (401, 401, 401)
    assert revoked.json() == {"error": "invalid token"}


async def test_a_browser_signs_in_with_a_cookie_and_forms_need_its_csrf_token(
    receiver: str, world: World, db_sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with httpx.AsyncClient(base_url=receiver) as browser:
        form = await browser.get("/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        no_csrf = await browser.post("/login", data={"token": world.token})
        assert no_csrf.status_code == 403
        bad = await browser.post("/login", data={"token": "nope", "csrf_token": csrf.group(1)})
        assert bad.status_code == 401 and "That token is not valid." in bad.text
        signed_in = await browser.post(
            "/login", data={"token": world.token, "csrf_token": csrf.group(1)}
        )
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert world.token not in signed_in.headers["set-cookie"]

        sessions = await browser.get(f"/builders/{world.builder}")
        assert sessions.status_code == 200 and "Ada" in sessions.text
        assert (await browser.get(f"/builders/{world.other_builder}")).status_code == 404
        page = await browser.get(f"/sessions/{world.session}")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None

        forged = await browser.post(f"/sessions/{world.session}/pause")
        assert forged.status_code == 403
        chat_without_header = await browser.post(
            f"/api/chat/{world.builder}", json={"conversation_id": "c", "message": "hi"}
        )
        assert chat_without_header.status_code == 403
        paused = await browser.post(
            f"/sessions/{world.session}/pause", data={"csrf_token": token.group(1)}
        )
        assert paused.status_code == 303
        assert "paused" in (await browser.get(paused.headers["location"])).text

        async with db_sessions.begin() as db:
            for row in await db.scalars(select(ApiToken)):
                await revoke_token(row.id, db=db)
        assert (await browser.get(f"/builders/{world.builder}")).status_code == 401


async def test_the_database_being_down_is_503_not_500(make_receiver: Callable[..., str]) -> None:
    base_url = make_receiver(DATABASE_URL=f"postgresql://127.0.0.1:{free_port()}/none")
    async with httpx.AsyncClient(base_url=base_url, timeout=20) as client:
        as_builder = await client.get(
            "/api/openapi.json", headers={"Authorization": "Bearer wbt_anything"}
        )
        as_admin = await client.get("/builders", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert (as_builder.status_code, as_builder.json()) == (
        503,
        {"error": "database unavailable, retry later"},
    )
    assert as_admin.status_code == 503


async def test_signing_in_only_redirects_within_the_site(receiver: str, world: World) -> None:
    targets = {}
    for target in (f"/sessions/{world.session}", "//evil.example", "/\\evil.example", "https://x"):
        async with httpx.AsyncClient(base_url=receiver) as browser:
            form = (await browser.get("/login")).text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert csrf is not None
            signed_in = await browser.post(
                "/login",
                data={"token": world.token, "csrf_token": csrf.group(1), "next": target},
            )
            targets[target] = signed_in.headers["location"]
    assert list(targets.values()) == [f"/sessions/{world.session}", "/", "/", "/"]
