"""Who `make demo` talks to: the Demo Bakery (created on first use, with its opening
hours as a document), or a builder of the operator's own with its numbers."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from db.builders import (
    add_channel,
    channels_of,
    create_builder,
    find_channel,
    get_builder,
    remove_channel,
)
from db.core.credentials import (
    ChannelCredentials,
    MetaCredentials,
    TwilioCredentials,
    UnreadableCredentials,
    open_credentials,
)
from db.core.settings import Settings
from db.document_files import chunk_text
from db.document_store import documents_of, replace_document
from db.engine import create_engine, create_sessionmaker
from db.models import Channel
from db.tokens import create_token, live_token, revoke_token, tokens_of

BAKERY_DOCUMENT = "bakery.md"
DEMO_TWILIO_NUMBER = "whatsapp:+14155550100"
"""A fictional number (North America keeps 555-0100 to 555-0199 for fiction): never
one a user routes, so `wabot channel add … --address <the Twilio Sandbox>` stays free."""
TWILIO_SANDBOX_NUMBER = "whatsapp:+14155238886"
"""What the Demo Bakery held before; an earlier demo's database gives it back."""
DEMO_META_PHONE_NUMBER_ID = "100000000000001"
DEMO_TOKEN_NAME = "demo"
DEMO_TOKENS_FILE = "demo-tokens.json"
DEFAULT_QUESTION = "When do you open on Sunday?"
"""What the demo asks the builder's documents (the Demo Bakery's hours answer it)."""


class DemoFailure(Exception):
    """The demo cannot go on; the message says why."""


@dataclass(frozen=True)
class DemoTarget:
    """A builder and the numbers the demo's users write to (None: that leg is skipped),
    with the secrets that sign their webhooks when they have their own."""

    builder_id: uuid.UUID
    name: str
    twilio_address: str | None
    meta_phone_number_id: str | None
    twilio_auth_token: str | None = field(default=None, repr=False)
    meta_app_secret: str | None = field(default=None, repr=False)


async def demo_target(settings: Settings, builder_id: uuid.UUID | None) -> DemoTarget:
    """`builder_id`'s first Twilio and Meta numbers, or the Demo Bakery's."""
    engine = create_engine(settings.resolved_database_url, pooler=settings.database_pooler)
    try:
        async with create_sessionmaker(engine).begin() as db:
            if builder_id is None:
                return await _demo_bakery(settings, db=db)
            builder = await get_builder(builder_id, db=db)
            if builder is None:
                raise DemoFailure(f"no builder with id {builder_id}")
            channels = await channels_of(builder_id, db=db)
    finally:
        await engine.dispose()
    first = {each.provider: each for each in reversed(channels)}
    if not first:
        raise DemoFailure(
            f"builder {builder_id} has no number yet: wabot channel add {builder_id} "
            "--provider twilio --address whatsapp:+14155550123"
        )
    twilio, meta = first.get("twilio"), first.get("meta")
    twilio_own = _own_credentials(twilio, settings) if twilio else None
    meta_own = _own_credentials(meta, settings) if meta else None
    return DemoTarget(
        builder_id,
        builder.name,
        twilio_address=twilio.address if twilio else None,
        meta_phone_number_id=meta.address if meta else None,
        twilio_auth_token=twilio_own.auth_token
        if isinstance(twilio_own, TwilioCredentials)
        else None,
        meta_app_secret=meta_own.app_secret if isinstance(meta_own, MetaCredentials) else None,
    )


def _own_credentials(channel: Channel, settings: Settings) -> ChannelCredentials | None:
    """A number's own credentials: the demo signs its webhooks with them, as the provider
    would, for the receiver to accept them."""
    if channel.credentials is None:
        return None
    try:
        return open_credentials(settings.credentials_cipher, channel.provider, channel.credentials)
    except UnreadableCredentials as error:
        raise DemoFailure(f"{channel.provider} number {channel.address}: {error}") from None


async def _demo_bakery(settings: Settings, *, db: AsyncSession) -> DemoTarget:
    await _release_the_sandbox_number(db=db)
    twilio = await find_channel("twilio", DEMO_TWILIO_NUMBER, db=db)
    if twilio is None:
        bakery = await create_builder(
            name="Demo Bakery",
            instructions="You are the friendly assistant of a small bakery.",
            model=settings.default_model,
            db=db,
        )
        twilio = await add_channel(bakery.id, provider="twilio", address=DEMO_TWILIO_NUMBER, db=db)
    if await find_channel("meta", DEMO_META_PHONE_NUMBER_ID, db=db) is None:
        await add_channel(
            twilio.builder_id, provider="meta", address=DEMO_META_PHONE_NUMBER_ID, db=db
        )
    if not await documents_of(twilio.builder_id, db=db):
        text = files("worker.demo").joinpath(BAKERY_DOCUMENT).read_text(encoding="utf-8")
        await replace_document(twilio.builder_id, "hours.md", chunk_text(text), db=db)
    return DemoTarget(
        twilio.builder_id,
        "Demo Bakery",
        twilio_address=DEMO_TWILIO_NUMBER,
        meta_phone_number_id=DEMO_META_PHONE_NUMBER_ID,
    )


async def _release_the_sandbox_number(*, db: AsyncSession) -> None:
    """A Demo Bakery made by an earlier demo held the Twilio Sandbox's number (it still
    holds the demo's Meta id): it moves to the fictional one, leaving the Sandbox's to
    the user's own builder. A Sandbox number a user routed stays theirs."""
    sandbox = await find_channel("twilio", TWILIO_SANDBOX_NUMBER, db=db)
    meta = await find_channel("meta", DEMO_META_PHONE_NUMBER_ID, db=db)
    if sandbox is None or meta is None or sandbox.builder_id != meta.builder_id:
        return
    if await find_channel("twilio", DEMO_TWILIO_NUMBER, db=db) is None:
        sandbox.address = DEMO_TWILIO_NUMBER
    else:
        await remove_channel("twilio", TWILIO_SANDBOX_NUMBER, db=db)
    await db.flush()


async def demo_token(settings: Settings, builder_id: uuid.UUID) -> str:
    """The demo's one token for `builder_id`, kept in `.wabot/demo-tokens.json`: the one
    an earlier run made while it is live, else a new one, revoking any other the demo
    made, so runs do not pile up tokens that never expire."""
    saved = settings.data_dir / DEMO_TOKENS_FILE
    try:
        tokens: dict[str, str] = json.loads(saved.read_text())
    except (OSError, ValueError):
        tokens = {}
    engine = create_engine(settings.resolved_database_url, pooler=settings.database_pooler)
    try:
        async with create_sessionmaker(engine).begin() as db:
            kept = tokens.get(str(builder_id))
            found = await live_token(kept, db=db) if kept else None
            if kept and found is not None and found.builder_id == builder_id:
                return kept
            for earlier in await tokens_of(builder_id, db=db):
                if earlier.name == DEMO_TOKEN_NAME and earlier.revoked_at is None:
                    await revoke_token(earlier.id, db=db)
            secret = (await create_token(builder_id, name=DEMO_TOKEN_NAME, db=db)).secret
    finally:
        await engine.dispose()
    write_private(saved, json.dumps({**tokens, str(builder_id): secret}, indent=2))
    return secret


def write_private(path: Path, text: str) -> None:
    """Write a secret only its owner may read (0600 from the start, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text + "\n")
