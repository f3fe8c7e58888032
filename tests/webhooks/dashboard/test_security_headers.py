"""Every dashboard response carries the security headers, signed in or not: a CSP that
runs only our own script files and forbids framing, nosniff, no Referer, and no-store on
all but static files; the templates hold no inline script for the CSP to block."""

from __future__ import annotations

import re

import httpx

from tests.webhooks.dashboard.conftest import World, browser_signed_in
from webhooks.dashboard.rendering import HERE

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def assert_secured(response: httpx.Response, *, cacheable: bool = False) -> None:
    policy = response.headers.get("content-security-policy", "")
    directives = dict(
        (directive.split(" ", 1) + [""])[:2] for directive in policy.split("; ") if directive
    )
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    assert directives.get("script-src") == "'self'", where
    assert directives.get("frame-ancestors") == "'none'", where
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    assert (response.headers.get("cache-control") == "no-store") is not cacheable, where


async def test_every_page_and_answer_carries_the_security_headers(
    receiver: str, world: World
) -> None:
    pages = [
        "/login",
        "/builders",
        f"/builders/{world.builder}",
        f"/builders/{world.builder}/chat",
        f"/sessions/{world.session}",
        f"/sessions/{world.session}/entries",
        f"/api/builders/{world.builder}/sessions",
        "/api/openapi.json",
        "/no/such/page",
    ]
    async with httpx.AsyncClient(base_url=receiver) as client:
        for path in pages:
            assert_secured(await client.get(path))  # 401, or the sign-in page
        await browser_signed_in(client, world.token)
        for path in pages:
            assert_secured(await client.get(path))  # 200, 403 or 404
        refused = await client.post("/login", content=b"x" * 70_000)
        assert refused.status_code == 413
        assert_secured(refused)
        assert_secured(await client.get("/static/app.css"), cacheable=True)


def test_templates_hold_no_inline_script() -> None:
    """The CSP runs only script files: an inline script, `on…=` handler or `javascript:`
    URL in a template would silently stop working."""
    for template in sorted((HERE / "templates").glob("*.html")):
        html = template.read_text()
        for script in re.findall(r"<script\b[^>]*>", html):
            assert re.search(r'\ssrc="/static/[^"]+"', script), (template.name, script)
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), template.name
        assert not re.search(r"\son[a-z]+\s*=", html, re.IGNORECASE), template.name
        assert "javascript:" not in html.lower(), template.name
