"""The receiver's in-process copy of the secrets that verify each channel's webhooks,
so a webhook costs no query for them.

Every channel is loaded by one query and its own credentials decrypted once per stored
token. The copy is reloaded on a miss, at most once every `MISS_RELOAD_SECONDS`: a
webhook it cannot verify waits for that reload (a number added or given new credentials
meanwhile never loses one), a webhook for a number it does not know takes a reload that
is due (most such numbers are simply nobody's). It is also reloaded before use once it
is `REFRESH_SECONDS` old: a removed channel, or a replaced secret, stops verifying
within that time.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.builders import channel_routes
from db.core.credentials import (
    ChannelCredentials,
    CredentialsCipher,
    MetaCredentials,
    TwilioCredentials,
    UnreadableCredentials,
    open_credentials,
)

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
MISS_RELOAD_SECONDS = 1.0


@dataclass(frozen=True)
class Own:
    """A channel's own webhook secret; None when its credentials cannot be decrypted
    (nothing verifies its webhooks then: they get 403)."""

    secret: str | None


@dataclass(frozen=True)
class WebhookSecrets:
    """Every channel's address, mapped to its own webhook secret or to None when the
    global one (TWILIO_AUTH_TOKEN, META_APP_SECRET) verifies it."""

    loaded_at: float
    twilio: Mapping[str, Own | None]
    """Twilio address → its account's auth token."""
    meta: Mapping[str, Own | None]
    """Meta phone number id → its app's secret."""
    meta_app_secrets: frozenset[str]
    """The distinct own app secrets of Meta channels (a few: one per app)."""


class ChannelSecrets:
    """One receiver process's copy, shared by its requests (on its loop)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: CredentialsCipher | None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._secrets: WebhookSecrets | None = None
        self._opened: dict[str, ChannelCredentials | None] = {}
        self._lock = asyncio.Lock()

    async def current(self) -> WebhookSecrets:
        """The copy, reloaded first when it is older than REFRESH_SECONDS."""
        secrets = self._secrets
        if secrets is not None and time.monotonic() - secrets.loaded_at < REFRESH_SECONDS:
            return secrets
        return await self._reload(stale=secrets, not_before=0.0)

    async def fresher(self, seen: WebhookSecrets) -> WebhookSecrets:
        """A copy newer than `seen` if one is due (a number unknown to it arrived);
        `seen` itself when it is younger than MISS_RELOAD_SECONDS."""
        if self._secrets is not None and self._secrets is not seen:
            return self._secrets
        if time.monotonic() - seen.loaded_at < MISS_RELOAD_SECONDS:
            return seen
        return await self._reload(stale=seen, not_before=0.0)

    async def after_miss(self, seen: WebhookSecrets) -> WebhookSecrets:
        """A copy newer than `seen`, which could not verify a request: reloaded, no sooner
        than MISS_RELOAD_SECONDS after `seen` was (concurrent misses share one reload)."""
        return await self._reload(stale=seen, not_before=seen.loaded_at + MISS_RELOAD_SECONDS)

    async def _reload(self, *, stale: WebhookSecrets | None, not_before: float) -> WebhookSecrets:
        async with self._lock:
            if self._secrets is not None and self._secrets is not stale:
                return self._secrets  # another request reloaded it meanwhile
            wait = not_before - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._secrets = await self._load()
            return self._secrets

    async def _load(self) -> WebhookSecrets:
        async with self._sessionmaker() as db:
            routes = await channel_routes(db=db)
        opened: dict[str, ChannelCredentials | None] = {}
        secrets: dict[str, dict[str, Own | None]] = {"twilio": {}, "meta": {}}
        for channel_id, provider, address, stored in routes:
            own = None
            if stored is not None:
                if stored not in opened:
                    opened[stored] = self._open(channel_id, provider, stored)
                own = _webhook_secret(opened[stored])
            secrets[provider][address] = own
        self._opened = opened  # only current tokens stay in memory
        return WebhookSecrets(
            loaded_at=time.monotonic(),
            twilio=secrets["twilio"],
            meta=secrets["meta"],
            meta_app_secrets=frozenset(
                own.secret for own in secrets["meta"].values() if own is not None and own.secret
            ),
        )

    def _open(self, channel_id: uuid.UUID, provider: str, stored: str) -> ChannelCredentials | None:
        """Decrypted once per stored token; an unreadable one is logged once, as None."""
        if stored in self._opened:
            return self._opened[stored]
        try:
            return open_credentials(self._cipher, provider, stored)
        except UnreadableCredentials as error:
            logger.error(
                "%s channel %s: %s; its webhooks are refused (403) until CREDENTIALS_KEY "
                "holds the key they were encrypted with",
                provider,
                channel_id,
                error,
            )
            return None


def _webhook_secret(credentials: ChannelCredentials | None) -> Own | None:
    """What verifies a channel with own credentials: its auth token or app secret; None
    (the global secret) for a Meta channel with only its own access token."""
    if credentials is None:
        return Own(None)
    if isinstance(credentials, TwilioCredentials):
        return Own(credentials.auth_token)
    assert isinstance(credentials, MetaCredentials)
    return Own(credentials.app_secret) if credentials.app_secret else None
