"""`/healthz` says the process is up; `/readyz` checks the database and the broker."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.fakes.server import free_port


async def test_healthz_and_readyz_when_everything_is_up(receiver: str) -> None:
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{receiver}/healthz")
        ready = await client.get(f"{receiver}/readyz")
    assert health.status_code == 200
    assert ready.status_code == 200
    assert ready.json() == {"database": "ok", "broker": "ok"}


async def test_readyz_names_what_is_down(make_receiver: Callable[..., str]) -> None:
    base_url = make_receiver(
        DATABASE_URL=f"postgresql://127.0.0.1:{free_port()}/none",
        CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0",
    )
    async with httpx.AsyncClient(timeout=20) as client:
        health = await client.get(f"{base_url}/healthz")
        ready = await client.get(f"{base_url}/readyz")
    assert health.status_code == 200
    assert ready.status_code == 503
    body = ready.json()
    assert body["database"].startswith("unreachable") and body["broker"].startswith("unreachable")
