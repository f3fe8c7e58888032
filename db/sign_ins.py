"""Dashboard sign-ins, kept server-side so that signing out ends them: a replayed cookie
of a signed-out browser finds its row revoked. The cookie holds a random secret; the
table only its SHA-256 (the secret has 256 bits: no slow hash needed).

A builder's sign-in lasts while the token it signed in with is live; the admin's while
`ADMIN_TOKEN` is unchanged (see `DashboardSignIn.admin_key`).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, and_, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import ApiToken, DashboardSignIn


@dataclass(frozen=True)
class SignedIn:
    """Who a live sign-in is: the admin (`builder_id` None) or a builder by a token."""

    builder_id: uuid.UUID | None
    token_id: uuid.UUID | None


def _hashed(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


async def start_sign_in(
    who: SignedIn, *, admin_key: str | None, lifetime_seconds: float, db: AsyncSession
) -> str:
    """Record a sign-in of `who` (the admin's with `admin_key`); returns the secret for
    the browser's cookie. Sign-ins expired by now are deleted on the way."""
    now = datetime.now(UTC)
    await db.execute(delete(DashboardSignIn).where(DashboardSignIn.expires_at < now))
    secret = secrets.token_urlsafe(32)
    db.add(
        DashboardSignIn(
            secret_hash=_hashed(secret),
            builder_id=who.builder_id,
            token_id=who.token_id,
            admin_key=admin_key if who.builder_id is None else None,
            expires_at=now + timedelta(seconds=lifetime_seconds),
        )
    )
    await db.flush()
    return secret


@dataclass(frozen=True)
class SignInSecret:
    """A cookie's sign-in secret not checked yet, for a read that checks it in its own
    statement (`db.live_updates`); `admin_key` as for `signed_in`."""

    secret: str
    admin_key: str | None


def sign_in_query(
    secret: str, *, admin_key: str | None
) -> Select[uuid.UUID | None, uuid.UUID | None]:
    """`builder_id` and `token_id` of the sign-in this cookie's secret names, if it still
    stands: one row at most, by the unique index on `secret_hash`."""
    still_valid = [
        and_(
            DashboardSignIn.builder_id.is_not(None),
            ApiToken.id.is_not(None),
            ApiToken.revoked_at.is_(None),
        )
    ]
    if admin_key is not None:
        still_valid.append(
            and_(DashboardSignIn.builder_id.is_(None), DashboardSignIn.admin_key == admin_key)
        )
    return (
        select(DashboardSignIn.builder_id, DashboardSignIn.token_id)
        .outerjoin(ApiToken, ApiToken.id == DashboardSignIn.token_id)
        .where(
            DashboardSignIn.secret_hash == _hashed(secret),
            DashboardSignIn.revoked_at.is_(None),
            DashboardSignIn.expires_at > datetime.now(UTC),
            or_(*still_valid),
        )
    )


async def signed_in(secret: str, *, admin_key: str | None, db: AsyncSession) -> SignedIn | None:
    """Who this cookie's secret signed in, if the sign-in still stands (one indexed query)."""
    found = (await db.execute(sign_in_query(secret, admin_key=admin_key))).first()
    if found is None:
        return None
    return SignedIn(builder_id=found.builder_id, token_id=found.token_id)


async def end_sign_in(secret: str, *, db: AsyncSession) -> None:
    """Sign out: the cookie holding `secret` no longer signs anyone in."""
    await db.execute(
        update(DashboardSignIn)
        .where(DashboardSignIn.secret_hash == _hashed(secret), DashboardSignIn.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
