"""Builders and the WhatsApp numbers (channels) that route users to them."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import CursorResult, Delete, Row, Update, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

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


class AddressTaken(ValueError):
    """The address already routes users to a builder; the message names it and its id,
    so the operator knows whose number to remove or to use instead."""

    def __init__(self, provider: str, address: str, holder: Builder) -> None:
        super().__init__(
            f"{provider} address {address} is already routed to builder "
            f"{holder.name!r} ({holder.id})"
        )
        self.holder_id = holder.id


async def add_channel(
    builder_id: uuid.UUID,
    *,
    provider: str,
    address: str,
    credentials: str | None = None,
    db: AsyncSession,
) -> Channel:
    """`credentials`: the number's own, as `CredentialsCipher.encrypt` stored them.
    Raises `AddressTaken` when a builder already holds the address (two adding it at
    the same moment: the unique constraint's IntegrityError)."""
    held = await find_channel(provider, address, db=db)
    if held is not None:
        holder = await db.get(Builder, held.builder_id)
        assert holder is not None  # channels.builder_id is a foreign key
        raise AddressTaken(provider, address, holder)
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
