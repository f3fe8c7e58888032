"""Builders and the WhatsApp numbers (channels) that route users to them."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, Row, Update, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.core.credentials import (
    CredentialsCipher,
    TwilioCredentials,
    UnreadableCredentials,
    open_credentials,
)
from db.models import Builder, Channel

BUILDER_SETTINGS = (
    "name",
    "instructions",
    "model",
    "unsupported_reply",
    "fallback_reply",
    "temperature",
    "max_tokens",
    "history_window",
    "search_language",
    "turns_per_minute",
    "reactions_as_input",
    "voice_replies",
)
"""What an operator may set on a builder."""
INTEGER_MAX = 2**31 - 1
"""The columns are INTEGER: Postgres refuses anything larger."""
NUMBER_LIMITS: dict[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "max_tokens": (1, INTEGER_MAX),
    "history_window": (0, INTEGER_MAX),
    "turns_per_minute": (0, INTEGER_MAX),
}
"""The lowest and highest value of each number setting (None: the default)."""
TEXT_LIMITS = {"name": 200, "model": 100, "search_language": 63}
"""The longest value of the text settings the columns hold."""
REQUIRED = ("name", "instructions", "model")


def setting_problems(changes: dict[str, Any]) -> dict[str, str]:
    """What is wrong with `changes` (keys of `BUILDER_SETTINGS`), by key: what the
    dashboard's form shows next to each field and the CLI's options check too."""
    problems = {}
    for key, value in changes.items():
        if key in REQUIRED and not (isinstance(value, str) and value.strip()):
            problems[key] = "must not be empty"
        elif isinstance(value, str) and "\x00" in value:
            problems[key] = "must not contain NUL (U+0000)"
        elif isinstance(value, str) and len(value) > TEXT_LIMITS.get(key, len(value)):
            problems[key] = f"must be at most {TEXT_LIMITS[key]} characters"
        elif key in NUMBER_LIMITS and value is not None:
            low, high = NUMBER_LIMITS[key]
            if not low <= value <= high:
                problems[key] = f"must be between {_plain(low)} and {_plain(high)}"
    return problems


def _plain(number: float) -> str:
    """`2`, `2147483647` and `0.5`: no `.0`, no exponent."""
    return str(int(number)) if float(number).is_integer() else str(number)


class AlreadyRouted(ValueError):
    """The address is another channel's already; `holder_id`/`holder_name` say whose."""

    def __init__(self, provider: str, address: str, holder_id: uuid.UUID, holder_name: str):
        super().__init__(
            f"{provider} address {address} is already routed to builder {holder_name!r}"
            f" ({holder_id})"
        )
        self.holder_id = holder_id
        self.holder_name = holder_name


async def create_builder(
    *,
    name: str,
    instructions: str,
    model: str,
    unsupported_reply: str | None = None,
    fallback_reply: str | None = None,
    db: AsyncSession,
    **settings: Any,
) -> Builder:
    """`settings`: the other `BUILDER_SETTINGS` (model settings, history window, language,
    turns per minute)."""
    builder = Builder(
        name=name,
        instructions=instructions,
        model=model,
        unsupported_reply=unsupported_reply,
        fallback_reply=fallback_reply,
        **settings,
    )
    db.add(builder)
    await db.flush()
    return builder


async def get_builder(builder_id: uuid.UUID, *, db: AsyncSession) -> Builder | None:
    return await db.get(Builder, builder_id)


async def list_builders(*, db: AsyncSession) -> list[Builder]:
    return list(await db.scalars(select(Builder).order_by(Builder.created_at, Builder.name)))


async def update_builder(
    builder_id: uuid.UUID, changes: dict[str, Any], *, db: AsyncSession
) -> Builder | None:
    """Apply `changes` (keys of `BUILDER_SETTINGS`; None clears an optional one)."""
    builder = await db.get(Builder, builder_id)
    if builder is None:
        return None
    for key, value in changes.items():
        if key not in BUILDER_SETTINGS:
            raise ValueError(f"{key} is not a builder setting")
        setattr(builder, key, value)
    await db.flush()
    return builder


async def delete_builder(builder_id: uuid.UUID, *, db: AsyncSession) -> bool:
    """Delete the builder with its channels, sessions, tokens and documents (cascade)."""
    return await _changed_any(delete(Builder).where(Builder.id == builder_id), db=db)


async def add_channel(
    builder_id: uuid.UUID,
    *,
    provider: str,
    address: str,
    credentials: str | None = None,
    db: AsyncSession,
) -> Channel:
    """`credentials`: the number's own, as `CredentialsCipher.encrypt` stored them.
    Raises `AlreadyRouted`, naming the builder, when one already holds the address (two
    adding it at the same moment: the unique constraint's IntegrityError)."""
    held = await find_channel(provider, address, db=db)
    if held is not None:
        holder = await db.get(Builder, held.builder_id)
        assert holder is not None  # channels.builder_id is a foreign key
        raise AlreadyRouted(provider, address, holder.id, holder.name)
    channel = Channel(
        builder_id=builder_id, provider=provider, address=address, credentials=credentials
    )
    db.add(channel)
    await db.flush()
    return channel


async def channels_of(builder_id: uuid.UUID | None, *, db: AsyncSession) -> list[Channel]:
    """A builder's channels, or every channel when `builder_id` is None."""
    query = select(Channel).order_by(Channel.created_at, Channel.address)
    if builder_id is not None:
        query = query.where(Channel.builder_id == builder_id)
    return list(await db.scalars(query))


async def remove_channel(provider: str, address: str, *, db: AsyncSession) -> bool:
    """Stop routing `address`; its conversations stay, their new messages are unroutable."""
    return await _changed_any(
        delete(Channel).where(Channel.provider == provider, Channel.address == address), db=db
    )


async def find_channel(provider: str, address: str, *, db: AsyncSession) -> Channel | None:
    """The channel a provider delivered to, or None when no builder owns that address."""
    return await db.scalar(
        select(Channel).where(Channel.provider == provider, Channel.address == address)
    )


async def set_channel_credentials(
    provider: str, address: str, credentials: str | None, *, db: AsyncSession
) -> bool:
    """Give the channel other own credentials (encrypted), or None for the global ones;
    False when no channel has that address."""
    return await _changed_any(
        update(Channel)
        .where(Channel.provider == provider, Channel.address == address)
        .values(credentials=credentials),
        db=db,
    )


async def channels_with_credentials(*, db: AsyncSession) -> list[Channel]:
    """Every channel with credentials of its own, locked until the caller commits (rekey)."""
    return list(
        await db.scalars(
            select(Channel)
            .where(Channel.credentials.is_not(None))
            .order_by(Channel.created_at, Channel.address)
            .with_for_update()
        )
    )


async def channel_routes(*, db: AsyncSession) -> list[Row[uuid.UUID, str, str, str | None]]:
    """(id, provider, address, stored credentials) of every channel, in one query: what
    the receiver verifies webhooks with."""
    return list(
        await db.execute(select(Channel.id, Channel.provider, Channel.address, Channel.credentials))
    )


async def _changed_any(statement: Delete | Update, *, db: AsyncSession) -> bool:
    """Whether an UPDATE or DELETE touched a row. The session returns a CursorResult for
    both, though its `execute` is typed `Result` (SQLAlchemy's advice: cast)."""
    result = cast(CursorResult[Any], await db.execute(statement))
    return bool(result.rowcount)


def credentials_description(channel: Channel, cipher: CredentialsCipher | None) -> dict[str, str]:
    """Whose credentials a channel uses (`channel list`, the dashboard): never a secret."""
    if channel.credentials is None:
        return {"source": "global"}
    try:
        credentials = open_credentials(cipher, channel.provider, channel.credentials)
    except UnreadableCredentials:
        return {"source": "own", "error": "cannot be decrypted with CREDENTIALS_KEY"}
    if isinstance(credentials, TwilioCredentials):
        return {"source": "own", "account_sid": credentials.masked_account_sid}
    return {
        "source": "own",
        "access_token": "own" if credentials.access_token else "global",
        "app_secret": "own" if credentials.app_secret else "global",
    }
