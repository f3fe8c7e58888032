"""`GET /metrics` on the receiver: off without METRICS_TOKEN, only for its holder, and
counting what the webhooks did, with the inbox's depth read at scrape time."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.factories import (
    META_PHONE_NUMBER_ID,
    builder_with_channel,
    meta_notification,
    meta_text_message,
    post_meta,
    post_signed,
    twilio_form,
)

pytestmark = pytest.mark.usefixtures("db_sessions")

TOKEN = "metrics-token-0123456789"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, base_url: str) -> Samples:
    """Every sample the endpoint serves, keyed by name and labels."""
    response = await client.get(f"{base_url}/metrics", headers=AUTHORIZED)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def webhooks(
    samples: Samples, outcome: str, provider: str = "twilio", webhook: str = "message"
) -> float:
    labels = frozenset({"provider": provider, "webhook": webhook, "outcome": outcome}.items())
    return samples.get(("wabot_webhooks_total", labels), 0.0)


@pytest.fixture
def metered(make_receiver: Callable[..., str]) -> str:
    """A receiver with a metrics token (on its own queue: nothing answers its messages)."""
    return make_receiver(METRICS_TOKEN=TOKEN)


async def test_metrics_are_off_without_a_token(receiver: str) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{receiver}/metrics", headers=AUTHORIZED)
    assert response.status_code == 404
    assert "METRICS_TOKEN" in response.text


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789", TOKEN])
async def test_metrics_need_the_token(metered: str, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{metered}/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "wabot_" not in response.text


async def test_an_accepted_message_is_counted_and_waits_in_the_inbox(
    db_sessions: async_sessionmaker[AsyncSession], metered: str
) -> None:
    form = twilio_form("hello")
    await builder_with_channel(db_sessions, address=form["To"])
    async with httpx.AsyncClient() as client:
        before = await scrape(client, metered)
        assert before[("wabot_inbox_waiting_messages", frozenset())] == 0
        response = await post_signed(client, f"{metered}/webhooks/twilio", form)
        assert response.status_code == 200
        again = await post_signed(client, f"{metered}/webhooks/twilio", form)
        assert again.status_code == 200
        after = await scrape(client, metered)
    assert webhooks(after, "accepted") - webhooks(before, "accepted") == 1
    assert webhooks(after, "duplicate") - webhooks(before, "duplicate") == 1
    assert after[("wabot_inbox_waiting_messages", frozenset())] == 1
    assert after[("wabot_inbox_oldest_waiting_age_seconds", frozenset())] > 0


async def test_a_bad_signature_is_counted(metered: str) -> None:
    async with httpx.AsyncClient() as client:
        before = await scrape(client, metered)
        response = await post_signed(
            client, f"{metered}/webhooks/twilio", twilio_form("hi"), token="wrong-auth-token"
        )
        assert response.status_code == 403
        too_large = await client.post(
            f"{metered}/webhooks/twilio",
            content=b"x" * (1024 * 1024 + 1),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert too_large.status_code == 413
        after = await scrape(client, metered)
    assert webhooks(after, "bad_signature") - webhooks(before, "bad_signature") == 1
    assert webhooks(after, "too_large") - webhooks(before, "too_large") == 1
    assert webhooks(after, "accepted") == webhooks(before, "accepted")


async def test_meta_notifications_are_counted_accepted_duplicate_and_bad_request(
    db_sessions: async_sessionmaker[AsyncSession], metered: str
) -> None:
    await builder_with_channel(db_sessions, provider="meta", address=META_PHONE_NUMBER_ID)
    body = meta_notification([meta_text_message("hello")])
    url = f"{metered}/webhooks/meta"
    async with httpx.AsyncClient() as client:
        before = await scrape(client, metered)
        assert (await post_meta(client, url, body)).status_code == 200
        assert (await post_meta(client, url, body)).status_code == 200
        assert (await post_meta(client, url, b"{not json")).status_code == 400
        after = await scrape(client, metered)
    for outcome in ("accepted", "duplicate", "bad_request"):
        change = webhooks(after, outcome, "meta", "notification")
        assert change - webhooks(before, outcome, "meta", "notification") == 1, outcome
    assert after[("wabot_inbox_waiting_messages", frozenset())] == 1
