"""Builders and the WhatsApp numbers (channels) that route users to them."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Builder, Channel


async def create_builder(
    *,
    name: str,
    instructions: str,
    model: str,
    unsupported_reply: str | None = None,
    fallback_reply: str | None = None,
    db: AsyncSession,
) -> Builder:
    builder = Builder(
        name=name,
        instructions=instructions,
        model=model,
        unsupported_reply=unsupported_reply,
        fallback_reply=fallback_reply,
    )
    db.add(builder)
    await db.flush()
    return builder


async def get_builder(builder_id: uuid.UUID, *, db: AsyncSession) -> Builder | None:
    return await db.get(Builder, builder_id)


async def add_channel(
    builder_id: uuid.UUID, *, provider: str, address: str, db: AsyncSession
) -> Channel:
    channel = Channel(builder_id=builder_id, provider=provider, address=address)
    db.add(channel)
    await db.flush()
    return channel


async def find_channel(provider: str, address: str, *, db: AsyncSession) -> Channel | None:
    """The channel a provider delivered to, or None when no builder owns that address."""
    return await db.scalar(
        select(Channel).where(Channel.provider == provider, Channel.address == address)
    )
