"""Guessing tokens is throttled per client address: after ten wrong tokens in a minute
(bearer or sign-in form) the address gets 429 with Retry-After, even for a right token,
while other addresses and browsers already signed in carry on; a metric counts both."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.webhooks.dashboard.conftest import World, browser_signed_in, csrf_of
from tests.webhooks.test_receiver_metrics import TOKEN, scrape

REFUSED = "wabot_dashboard_auth_refusals_total"


def refusals(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
    return {
        reason: samples.get((REFUSED, frozenset({("reason", reason)})), 0.0)
        for reason in ("wrong_token", "throttled")
    }


async def test_wrong_bearer_tokens_are_throttled_per_address(
    world: World, make_receiver: Callable[..., str]
) -> None:
    receiver = make_receiver(METRICS_TOKEN=TOKEN)
    sessions = f"/api/builders/{world.builder}/sessions"
    async with (
        httpx.AsyncClient(base_url=receiver) as client,
        httpx.AsyncClient(base_url=receiver) as browser,
    ):
        await browser_signed_in(browser, world.token)
        before = refusals(await scrape(client, receiver))
        guesses = [
            (await client.get(sessions, headers={"Authorization": f"Bearer wbt_guess{n}"}))
            for n in range(10)
        ]
        right_token = await client.get(sessions, headers=world.headers("builder"))
        sign_in_form = await client.post(
            "/login", data={"token": world.token, "csrf_token": csrf_of(await client.get("/login"))}
        )
        elsewhere = await client.get(
            sessions, headers={**world.headers("builder"), "X-Forwarded-For": "203.0.113.7"}
        )
        signed_in_browser = await browser.get(f"/builders/{world.builder}")
        after = refusals(await scrape(client, receiver))

    assert [guess.status_code for guess in guesses] == [401] * 10
    wait = int(right_token.headers["retry-after"])
    assert right_token.status_code == 429 and 1 <= wait <= 60
    assert right_token.json() == {
        "error": f"too many wrong tokens from this address; try again in {wait} s"
    }
    assert sign_in_form.status_code == 429 and "too many wrong tokens" in sign_in_form.text
    assert 1 <= int(sign_in_form.headers["retry-after"]) <= 60
    assert elsewhere.status_code == 200
    assert signed_in_browser.status_code == 200
    assert {reason: after[reason] - before[reason] for reason in after} == {
        "wrong_token": 10,
        "throttled": 2,
    }


async def test_wrong_tokens_on_the_sign_in_form_count_behind_a_trusted_proxy(
    world: World, make_receiver: Callable[..., str]
) -> None:
    """Behind a proxy the address is the one the proxy appended; what the client put
    before it changes nothing."""
    receiver = make_receiver(TRUST_PROXY_HEADERS="true")
    statuses = []
    async with httpx.AsyncClient(base_url=receiver) as browser:
        csrf = csrf_of(await browser.get("/login"))
        for attempt in range(11):
            forwarded = {"X-Forwarded-For": f"10.0.{attempt}.1, 198.51.100.9"}
            response = await browser.post(
                "/login", data={"token": "wbt_guess", "csrf_token": csrf}, headers=forwarded
            )
            statuses.append(response.status_code)
    assert statuses == [401] * 10 + [429]
