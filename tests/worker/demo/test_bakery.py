"""Who `make demo` talks to and the token it prints, on the test database."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import add_channel, create_builder, find_channel
from db.core.settings import Settings
from db.tokens import live_token, tokens_of
from worker.demo.bakery import (
    DEMO_META_PHONE_NUMBER_ID,
    DEMO_TWILIO_NUMBER,
    TWILIO_SANDBOX_NUMBER,
    demo_target,
    demo_token,
)


def demo_settings(database_url: str, data_dir: Path) -> Settings:
    return Settings(_env_file=None, DATABASE_URL=database_url, WABOT_DATA_DIR=data_dir)


async def test_the_demo_reuses_its_token_and_replaces_it_when_revoked(
    database_url: str, db_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    settings = demo_settings(database_url, tmp_path / ".wabot")
    async with db_sessions.begin() as db:
        builder = await create_builder(name="Shop", instructions="I", model="m", db=db)

    first = await demo_token(settings, builder.id)
    again = await demo_token(settings, builder.id)
    assert again == first
    saved = tmp_path / ".wabot" / "demo-tokens.json"
    assert json.loads(saved.read_text()) == {str(builder.id): first}
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600

    # Lost (or revoked): a new one, and the demo's earlier tokens are revoked, not piled up.
    saved.unlink()
    replaced = await demo_token(settings, builder.id)
    assert replaced != first
    async with db_sessions() as db:
        assert await live_token(first, db=db) is None
        assert await live_token(replaced, db=db) is not None
        tokens = await tokens_of(builder.id, db=db)
    assert [(t.name, t.revoked_at is None) for t in tokens] == [("demo", False), ("demo", True)]


async def test_the_demo_bakery_gives_the_sandbox_number_back(
    database_url: str, db_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """An earlier demo's bakery held the Twilio Sandbox's number: it moves to the fictional
    one, and the user's builder can route the Sandbox."""
    async with db_sessions.begin() as db:
        bakery = await create_builder(name="Demo Bakery", instructions="I", model="m", db=db)
        await add_channel(bakery.id, provider="twilio", address=TWILIO_SANDBOX_NUMBER, db=db)
        await add_channel(bakery.id, provider="meta", address=DEMO_META_PHONE_NUMBER_ID, db=db)

    target = await demo_target(demo_settings(database_url, tmp_path), None)

    assert (target.builder_id, target.twilio_address) == (bakery.id, DEMO_TWILIO_NUMBER)
    async with db_sessions() as db:
        assert await find_channel("twilio", TWILIO_SANDBOX_NUMBER, db=db) is None
        moved = await find_channel("twilio", DEMO_TWILIO_NUMBER, db=db)
    assert moved is not None and moved.builder_id == bakery.id


async def test_a_sandbox_number_the_user_routed_stays_theirs(
    database_url: str, db_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with db_sessions.begin() as db:
        shop = await create_builder(name="Shop", instructions="I", model="m", db=db)
        await add_channel(shop.id, provider="twilio", address=TWILIO_SANDBOX_NUMBER, db=db)

    target = await demo_target(demo_settings(database_url, tmp_path), None)

    assert target.name == "Demo Bakery" and target.builder_id != shop.id
    assert target.twilio_address == DEMO_TWILIO_NUMBER
    async with db_sessions() as db:
        kept = await find_channel("twilio", TWILIO_SANDBOX_NUMBER, db=db)
    assert kept is not None and kept.builder_id == shop.id
