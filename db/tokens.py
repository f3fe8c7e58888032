"""Builders' API tokens: created once (the secret is shown to the operator and never
stored), found by their SHA-256, revoked by id.

Tokens are 256 random bits, so a plain SHA-256 is enough to make a leaked table useless
without the slow hashing a human password needs.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiToken

TOKEN_PREFIX = "wbt_"


@dataclass(frozen=True)
class IssuedToken:
    id: uuid.UUID
    builder_id: uuid.UUID
    secret: str


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_token(builder_id: uuid.UUID, *, name: str, db: AsyncSession) -> IssuedToken:
    """A new token for `builder_id`; its secret is returned here and nowhere else."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(builder_id=builder_id, name=name, token_hash=token_hash(secret))
    db.add(row)
    await db.flush()
    return IssuedToken(id=row.id, builder_id=builder_id, secret=secret)


async def revoke_token(token_id: uuid.UUID, *, db: AsyncSession) -> bool:
    """Revoke a live token; False when no live token has this id."""
    revoked = await db.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
        .returning(ApiToken.id)
    )
    return revoked.first() is not None


async def live_token(secret: str, *, db: AsyncSession) -> ApiToken | None:
    """The unrevoked token with this secret, or None."""
    if not secret.startswith(TOKEN_PREFIX):
        return None
    return await db.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == token_hash(secret), ApiToken.revoked_at.is_(None)
        )
    )


async def tokens_of(builder_id: uuid.UUID, *, db: AsyncSession) -> list[ApiToken]:
    result = await db.scalars(
        select(ApiToken).where(ApiToken.builder_id == builder_id).order_by(ApiToken.created_at)
    )
    return list(result)
