"""`wabot channel …`: the WhatsApp numbers that route users to a builder, with the
provider credentials each uses (its own, encrypted with CREDENTIALS_KEY, or the global)."""

from __future__ import annotations

import uuid
from typing import Any

import click
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.addresses import checked_channel_address
from db.builders import (
    AlreadyRouted,
    add_channel,
    channels_of,
    channels_with_credentials,
    credentials_description,
    find_channel,
    remove_channel,
    set_channel_credentials,
)
from db.core.credentials import UnreadableCredentials, new_key
from db.core.settings import get_settings
from db.models import Channel
from worker.cli.credential_commands import (
    Given,
    checked,
    credential_options,
    credentials_of,
    current_credentials,
    described_text,
    required_cipher,
    with_secrets_read,
)
from worker.cli.support import emit, existing_builder, in_transaction, json_option


@click.group()
def channel() -> None:
    """Channels: the WhatsApp numbers that route users to a builder."""


provider_option = click.option("--provider", type=click.Choice(["twilio", "meta"]), required=True)
address_option = click.option(
    "--address",
    required=True,
    help="Twilio: whatsapp:+E.164 number (a bare +E.164 is accepted). Meta: phone number id.",
)


@channel.command("add")
@click.argument("builder_id", type=click.UUID)
@provider_option
@address_option
@credential_options
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ...}.')
def channel_add(
    builder_id: uuid.UUID,
    provider: str,
    address: str,
    account_sid: str | None,
    auth_token: str | None,
    access_token: str | None,
    app_secret: str | None,
    as_json: bool,
) -> None:
    """Route messages for ADDRESS to builder BUILDER_ID, with the number's own provider
    credentials if given (else the global ones)."""
    address = normalized_address(provider, address, new=True)
    given = Given(account_sid, auth_token, access_token, app_secret)
    checked(provider, given, updating=False)
    stored = None
    if given.any:
        cipher = required_cipher()
        stored = cipher.encrypt(credentials_of(provider, with_secrets_read(given)))

    async def add(db: AsyncSession) -> uuid.UUID:
        await existing_builder(builder_id, db=db)
        try:
            added = await add_channel(
                builder_id, provider=provider, address=address, credentials=stored, db=db
            )
        except AlreadyRouted as taken:
            raise click.ClickException(str(taken)) from taken
        except IntegrityError as error:
            raise click.ClickException(f"{provider} address {address} is already routed") from error
        return added.id

    channel_id = in_transaction(add)
    emit(as_json, {"id": str(channel_id)}, str(channel_id))


@channel.command("update")
@provider_option
@address_option
@credential_options
@click.option(
    "--global-credentials", is_flag=True, help="Drop its own credentials: use the global ones."
)
def channel_update(
    provider: str,
    address: str,
    account_sid: str | None,
    auth_token: str | None,
    access_token: str | None,
    app_secret: str | None,
    global_credentials: bool,
) -> None:
    """Replace the credentials of ADDRESS (e.g. a leaked token) and keep its conversations.
    What is not given stays as it was (Twilio: --auth-token alone keeps the account SID)."""
    address = normalized_address(provider, address)
    given = Given(account_sid, auth_token, access_token, app_secret)
    if given.any == global_credentials:
        raise click.UsageError(
            "--global-credentials contradicts new credentials"
            if global_credentials
            else "nothing to change: give new credentials or --global-credentials"
        )
    checked(provider, given, updating=True)
    cipher = required_cipher() if given.any else None
    given = with_secrets_read(given)

    async def update(db: AsyncSession) -> None:
        found = await find_channel(provider, address, db=db)
        if found is None:
            raise click.ClickException(f"{provider} address {address} is not routed")
        stored = None
        if cipher is not None:
            current = current_credentials(found, cipher, given)
            stored = cipher.encrypt(credentials_of(provider, given, current))
        await set_channel_credentials(provider, address, stored, db=db)

    in_transaction(update)
    uses = "the global credentials" if global_credentials else "its own credentials"
    click.echo(f"updated {provider} {address}: it uses {uses}")


@channel.command("list")
@click.argument("builder_id", type=click.UUID, required=False)
@json_option
def channel_list(builder_id: uuid.UUID | None, as_json: bool) -> None:
    """List the channels of BUILDER_ID (of every builder when left out), with whether each
    uses its own or the global credentials; never a secret."""

    async def listing(db: AsyncSession) -> list[Channel]:
        if builder_id is not None:
            await existing_builder(builder_id, db=db)
        return await channels_of(builder_id, db=db)

    channels = in_transaction(listing)
    cipher = get_settings().credentials_cipher
    rows: list[dict[str, Any]] = [
        {
            "id": str(each.id),
            "builder_id": str(each.builder_id),
            "provider": each.provider,
            "address": each.address,
            "credentials": credentials_description(each, cipher),
        }
        for each in channels
    ]
    emit(
        as_json,
        rows,
        "\n".join(
            f"{row['provider']}  {row['address']}  {row['builder_id']}  "
            f"{described_text(row['credentials'])}"
            for row in rows
        )
        or "no channels",
    )


@channel.command("remove")
@provider_option
@address_option
def channel_remove(provider: str, address: str) -> None:
    """Stop routing ADDRESS; its conversations are kept, its new messages go unanswered."""
    address = normalized_address(provider, address)

    async def remove(db: AsyncSession) -> bool:
        return await remove_channel(provider, address, db=db)

    if not in_transaction(remove):
        raise click.ClickException(f"{provider} address {address} is not routed")
    click.echo(f"removed {provider} {address}")


@channel.command("new-key")
def channel_new_key() -> None:
    """Print a fresh key for CREDENTIALS_KEY. To rotate, put it first in the list
    (CREDENTIALS_KEY=NEW,OLD), run `wabot channel rekey`, then drop the old key."""
    click.echo(new_key())


@channel.command("rekey")
def channel_rekey() -> None:
    """Re-encrypt every channel's own credentials with the first key of CREDENTIALS_KEY."""
    cipher = required_cipher()

    async def rekey(db: AsyncSession) -> tuple[int, list[str]]:
        rekeyed, unreadable = 0, []
        for each in await channels_with_credentials(db=db):
            assert each.credentials is not None
            try:
                each.credentials = cipher.rotate(each.credentials)
            except UnreadableCredentials:
                unreadable.append(f"{each.provider} {each.address}")
                continue
            rekeyed += 1
        return rekeyed, unreadable

    rekeyed, unreadable = in_transaction(rekey)
    done = f"rekeyed {rekeyed} channel(s) with the first key of CREDENTIALS_KEY"
    if unreadable:
        raise click.ClickException(
            f"{done}; left {len(unreadable)} that no key of CREDENTIALS_KEY decrypts: "
            + ", ".join(unreadable)
        )
    click.echo(done)


def normalized_address(provider: str, address: str, *, new: bool = False) -> str:
    """`address` as channels store it and the receiver routes it (`checked_channel_address`;
    only a `new` number's length is checked against its country's)."""
    try:
        return checked_channel_address(provider, address, new=new)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--address") from None
