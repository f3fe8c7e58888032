"""Who `make demo` talks to: the Demo Bakery (created on first use, with its opening
hours as a document), or a builder of the operator's own with its numbers."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from importlib.resources import files

from sqlalchemy.ext.asyncio import AsyncSession

from db.builders import add_channel, channels_of, create_builder, find_channel, get_builder
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
from db.tokens import create_token

BAKERY_DOCUMENT = "bakery.md"
DEMO_TWILIO_NUMBER = "whatsapp:+14155238886"
DEMO_META_PHONE_NUMBER_ID = "100000000000001"
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
            "--provider twilio --address whatsapp:+14155550100"
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


async def demo_token(settings: Settings, builder_id: uuid.UUID) -> str:
    """A fresh builder token, as `wabot token create` makes one."""
    engine = create_engine(settings.resolved_database_url, pooler=settings.database_pooler)
    try:
        async with create_sessionmaker(engine).begin() as db:
            return (await create_token(builder_id, name="demo", db=db)).secret
    finally:
        await engine.dispose()
