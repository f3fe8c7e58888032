"""Channels' own provider credentials: their shapes, and their encryption at rest.

A channel with its own credentials stores them in `channels.credentials` as one Fernet
token of a JSON object, encrypted with the first key of `CREDENTIALS_KEY`; any of its
keys decrypts, so keys can be rotated (`wabot channel rekey`). What a Meta channel
leaves out falls back to the global `META_ACCESS_TOKEN` / `META_APP_SECRET`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

TWILIO_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
NEW_KEY_HINT = "make one with `wabot channel new-key`"


class UnreadableCredentials(ValueError):
    """Stored credentials that `CREDENTIALS_KEY` cannot open (the key is missing, or is
    not one they were encrypted with); the message names the variable."""


@dataclass(frozen=True)
class TwilioCredentials:
    """A Twilio account: sends go out under it and its token signs the number's webhooks."""

    account_sid: str
    auth_token: str = field(repr=False)

    def __post_init__(self) -> None:
        if not TWILIO_ACCOUNT_SID.match(self.account_sid):
            raise ValueError("a Twilio account SID is AC followed by 32 hexadecimal digits")
        if not self.auth_token:
            raise ValueError("the Twilio auth token is empty")

    @property
    def masked_account_sid(self) -> str:
        """`AC…1a2b`: enough to tell accounts apart, never the whole SID."""
        return f"AC…{self.account_sid[-4:]}"


@dataclass(frozen=True)
class MetaCredentials:
    """A Meta app's access token (sends) and app secret (webhook signatures); whichever
    is None is the global one."""

    access_token: str | None = field(default=None, repr=False)
    app_secret: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.access_token is None and self.app_secret is None:
            raise ValueError("Meta credentials need an access token, an app secret or both")
        if self.access_token == "" or self.app_secret == "":
            raise ValueError("a Meta access token or app secret is empty")


ChannelCredentials = TwilioCredentials | MetaCredentials


def fernet_keys(keys: str) -> MultiFernet:
    """`CREDENTIALS_KEY` as a MultiFernet: comma-separated Fernet keys, the first one
    encrypting. ValueError says which key is malformed, never what it holds."""
    parts = [part.strip() for part in keys.split(",") if part.strip()]
    if not parts:
        raise ValueError(f"must hold at least one Fernet key ({NEW_KEY_HINT})")
    fernets = []
    for number, part in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(part))
        except ValueError:
            raise ValueError(
                f"key {number} of {len(parts)} is not a Fernet key "
                f"(32 url-safe base64-encoded bytes; {NEW_KEY_HINT})"
            ) from None
    return MultiFernet(fernets)


def new_key() -> str:
    """A fresh Fernet key for `CREDENTIALS_KEY`."""
    return Fernet.generate_key().decode()


class CredentialsCipher:
    """Encrypts channels' credentials with the first key of `CREDENTIALS_KEY`, decrypts
    them with any of its keys."""

    def __init__(self, keys: str) -> None:
        self._fernet = fernet_keys(keys)

    def encrypt(self, credentials: ChannelCredentials) -> str:
        document = {key: value for key, value in asdict(credentials).items() if value is not None}
        return self._fernet.encrypt(json.dumps(document).encode()).decode()

    def decrypt(self, provider: str, token: str) -> ChannelCredentials:
        """The credentials of a `provider` channel stored as `token`."""
        try:
            document = json.loads(self._fernet.decrypt(token.encode()))
            if provider == "twilio":
                return TwilioCredentials(**document)
            return MetaCredentials(**document)
        except InvalidToken:
            raise UnreadableCredentials(
                "the channel's credentials cannot be decrypted with CREDENTIALS_KEY "
                "(none of its keys is the one they were encrypted with)"
            ) from None
        except (ValueError, TypeError) as error:
            raise UnreadableCredentials(
                f"the channel's credentials decrypt with CREDENTIALS_KEY but are not "
                f"{provider} credentials ({type(error).__name__})"
            ) from None

    def rotate(self, token: str) -> str:
        """`token` re-encrypted with the first key (for `wabot channel rekey`)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise UnreadableCredentials(
                "the channel's credentials cannot be decrypted with CREDENTIALS_KEY"
            ) from None


def open_credentials(
    cipher: CredentialsCipher | None, provider: str, token: str
) -> ChannelCredentials:
    """Decrypt a channel's stored credentials; UnreadableCredentials without a key."""
    if cipher is None:
        raise UnreadableCredentials(
            "the channel has credentials of its own but CREDENTIALS_KEY is not set "
            "(set it to the key they were encrypted with)"
        )
    return cipher.decrypt(provider, token)
