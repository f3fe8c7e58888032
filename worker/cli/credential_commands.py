"""Channels' own credentials on the command line: the options, secrets read without echo,
their checks, and what `channel list` says about them (never a secret)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from db.core.credentials import (
    NEW_KEY_HINT,
    TWILIO_ACCOUNT_SID,
    ChannelCredentials,
    CredentialsCipher,
    MetaCredentials,
    TwilioCredentials,
    UnreadableCredentials,
    open_credentials,
)
from db.core.settings import get_settings
from db.models import Channel

F = TypeVar("F", bound=Callable[..., Any])
SECRET_HELP = "`-` reads it without echo (a prompt, or a line of stdin when piped)."
OPTIONS_OF = {
    "twilio": ("account_sid", "auth_token"),
    "meta": ("access_token", "app_secret"),
}


def credential_options(command: F) -> F:
    """The four credential options, for `channel add` and `channel update`."""
    for option in reversed(
        [
            click.option("--account-sid", help="Twilio: the account SID (AC…) of this number."),
            click.option("--auth-token", help=f"Twilio: that account's auth token. {SECRET_HELP}"),
            click.option("--access-token", help=f"Meta: this number's access token. {SECRET_HELP}"),
            click.option(
                "--app-secret", help=f"Meta: the app secret of its webhooks. {SECRET_HELP}"
            ),
        ]
    ):
        command = option(command)
    return command


@dataclass(frozen=True)
class Given:
    """Credential options as typed; a secret may still be `-` (read later)."""

    account_sid: str | None = None
    auth_token: str | None = None
    access_token: str | None = None
    app_secret: str | None = None

    @property
    def any(self) -> bool:
        return any(value is not None for value in vars(self).values())


def checked(provider: str, given: Given, *, updating: bool) -> None:
    """Refuse another provider's options and a Twilio SID without its token (on `add`, a
    token without its SID too), before anything is prompted for."""
    for name, value in vars(given).items():
        if value is not None and name not in OPTIONS_OF[provider]:
            other = "meta" if provider == "twilio" else "twilio"
            raise click.UsageError(
                f"{_flag(name)} is a {other} option; a {provider} channel takes "
                + " and ".join(_flag(each) for each in OPTIONS_OF[provider])
            )
    if given.account_sid is not None:
        if not TWILIO_ACCOUNT_SID.match(given.account_sid):
            raise click.BadParameter(
                "a Twilio account SID is AC followed by 32 hexadecimal digits",
                param_hint="--account-sid",
            )
        if given.auth_token is None:
            raise click.UsageError("--account-sid needs --auth-token (the account's auth token)")
    if given.auth_token is not None and given.account_sid is None and not updating:
        raise click.UsageError("--auth-token needs --account-sid (the account it belongs to)")


def required_cipher() -> CredentialsCipher:
    """The cipher of CREDENTIALS_KEY, or the one-line error saying how to get a key."""
    cipher = get_settings().credentials_cipher
    if cipher is None:
        raise click.ClickException(
            "CREDENTIALS_KEY is not set: a channel's own credentials are stored encrypted "
            f"with it ({NEW_KEY_HINT} and set CREDENTIALS_KEY to it)"
        )
    return cipher


def with_secrets_read(given: Given) -> Given:
    """`given` with every secret given as `-` read without echo, in option order."""
    return Given(
        account_sid=given.account_sid,
        auth_token=_secret(given.auth_token, "Twilio auth token"),
        access_token=_secret(given.access_token, "Meta access token"),
        app_secret=_secret(given.app_secret, "Meta app secret"),
    )


def _secret(value: str | None, label: str) -> str | None:
    """Out of shell history: typed at a hidden prompt, or one line of piped stdin
    (getpass would read the terminal instead)."""
    if value != "-":
        return value
    if sys.stdin.isatty():
        return str(click.prompt(label, hide_input=True))
    return sys.stdin.readline().rstrip("\r\n")


def credentials_of(
    provider: str, given: Given, current: ChannelCredentials | None = None
) -> ChannelCredentials:
    """What `given` (secrets read) makes of a channel's credentials, over its `current`
    own ones when updating; refused with the reason when incomplete or empty."""
    try:
        if provider == "twilio":
            current_sid = current.account_sid if isinstance(current, TwilioCredentials) else None
            account_sid = given.account_sid or current_sid
            if account_sid is None:
                raise click.UsageError(
                    "--auth-token needs --account-sid: this channel uses the global credentials"
                )
            return TwilioCredentials(account_sid=account_sid, auth_token=given.auth_token or "")
        kept = (
            (current.access_token, current.app_secret)
            if isinstance(current, MetaCredentials)
            else (None, None)
        )
        return MetaCredentials(
            access_token=kept[0] if given.access_token is None else given.access_token,
            app_secret=kept[1] if given.app_secret is None else given.app_secret,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None


def current_credentials(
    channel: Channel, cipher: CredentialsCipher, given: Given
) -> ChannelCredentials | None:
    """The channel's own credentials that an update keeps; None when it has none. When
    they cannot be decrypted, only a complete replacement is accepted."""
    if channel.credentials is None:
        return None
    complete = (
        given.account_sid is not None
        if channel.provider == "twilio"
        else given.access_token is not None and given.app_secret is not None
    )
    if complete:
        return None
    try:
        return open_credentials(cipher, channel.provider, channel.credentials)
    except UnreadableCredentials as error:
        needed = " and ".join(_flag(each) for each in OPTIONS_OF[channel.provider])
        raise click.ClickException(f"{error}; give {needed} to replace them") from None


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def described_text(description: dict[str, str]) -> str:
    """`credentials_description` as the text column of `channel list`."""
    if description["source"] == "global":
        return "global credentials"
    details = ", ".join(f"{key.replace('_', ' ')}: {value}" for key, value in description.items())
    return "own credentials (" + details.removeprefix("source: own, ") + ")"
