"""Which client sends for each number: one built for its own credentials, the global
Twilio or Meta client, or the console when neither applies.

A number's own clients are built once per distinct credentials and kept for the life of
the process, so numbers of one account share its HTTP pool; stored credentials are
decrypted once per token, not per turn.
"""

from __future__ import annotations

import logging

from db.core.credentials import (
    ChannelCredentials,
    MetaCredentials,
    TwilioCredentials,
    UnreadableCredentials,
    open_credentials,
)
from db.core.settings import Settings
from db.media_links import MediaLinks
from db.models import Channel
from worker.channels.base import OutboundChannel
from worker.channels.console import ConsoleChannel
from worker.channels.meta_channel import MetaChannel
from worker.channels.twilio_channel import TwilioChannel
from worker.errors import TransientTurnError

logger = logging.getLogger(__name__)


class UnreadableChannelCredentials(TransientTurnError):
    """A number's own credentials that CREDENTIALS_KEY cannot decrypt. Transient: the key
    is the operator's to fix (a rotation not rolled out to every worker, a typo), and the
    turn's retries, then its `retry` on the dashboard, answer once it is; failing it for
    good at once would leave the user unanswered for a configuration slip."""


class ChannelPool:
    """One process's outbound clients, for every number it answers."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cipher = settings.credentials_cipher
        self.console = ConsoleChannel()
        self.twilio: TwilioChannel | None = None
        if settings.twilio_account_sid and settings.twilio_auth_token:
            self.twilio = self._twilio(
                TwilioCredentials(
                    settings.twilio_account_sid, settings.twilio_auth_token.get_secret_value()
                )
            )
        self.meta: MetaChannel | None = None
        if settings.meta_access_token is not None:
            self.meta = self._meta(settings.meta_access_token.get_secret_value())
        self._opened: dict[str, ChannelCredentials | UnreadableCredentials] = {}
        self._own: dict[ChannelCredentials, OutboundChannel] = {}

    def channel(self, channel: Channel) -> OutboundChannel:
        """The client for `channel`'s number; UnreadableChannelCredentials when its own
        credentials do not decrypt (logged once)."""
        credentials = self._credentials(channel)
        if isinstance(credentials, TwilioCredentials):
            if credentials not in self._own:
                self._own[credentials] = self._twilio(credentials)
            return self._own[credentials]
        if isinstance(credentials, MetaCredentials) and credentials.access_token is not None:
            key = MetaCredentials(access_token=credentials.access_token)
            if key not in self._own:
                self._own[key] = self._meta(credentials.access_token)
            return self._own[key]
        if channel.provider == "twilio" and self.twilio is not None:
            return self.twilio
        if channel.provider == "meta" and self.meta is not None:
            return self.meta
        return self.console

    def own_credentials(self, channel: Channel) -> ChannelCredentials | None:
        """`channel`'s own credentials (None: the global ones apply), for what else is
        asked of its provider in its name (fetching the media its users send)."""
        return self._credentials(channel)

    async def aclose(self) -> None:
        for each in [self.twilio, self.meta, *self._own.values()]:
            if each is not None:
                await each.aclose()

    def _credentials(self, channel: Channel) -> ChannelCredentials | None:
        stored = channel.credentials
        if stored is None:
            return None
        if stored not in self._opened:
            try:
                self._opened[stored] = open_credentials(self._cipher, channel.provider, stored)
            except UnreadableCredentials as error:
                logger.error("%s channel %s: %s", channel.provider, channel.id, error)
                self._opened[stored] = error
        opened = self._opened[stored]
        if isinstance(opened, UnreadableCredentials):
            raise UnreadableChannelCredentials(f"{channel.provider} channel {channel.id}: {opened}")
        return opened

    def _twilio(self, credentials: TwilioCredentials) -> TwilioChannel:
        settings = self._settings
        return TwilioChannel(
            account_sid=credentials.account_sid,
            auth_token=credentials.auth_token,
            timeout=settings.twilio_timeout_seconds,
            api_base_url=settings.twilio_api_base_url,
            status_callback=f"{settings.public_base_url}/webhooks/twilio/status"
            if settings.public_base_url
            else None,
            typing_indicator=settings.twilio_typing_indicator,
            media_links=MediaLinks(
                settings.public_base_url,
                settings.media_link_secret.get_secret_value(),
                settings.media_link_seconds,
            )
            if settings.public_base_url and settings.media_link_secret
            else None,
        )

    def _meta(self, access_token: str) -> MetaChannel:
        settings = self._settings
        return MetaChannel(
            access_token=access_token,
            api_base_url=settings.meta_api_base_url,
            api_version=settings.meta_api_version,
            timeout=settings.meta_timeout_seconds,
            typing_indicator=settings.typing_indicator,
            status_wait_seconds=settings.meta_status_wait_seconds,
        )
