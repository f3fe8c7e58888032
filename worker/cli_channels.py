"""`wabot channel …`: the WhatsApp numbers that route users to a builder."""

from __future__ import annotations

import re
import uuid

import click
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.builders import add_channel, channels_of, remove_channel
from db.models import Channel
from worker.cli_support import emit, existing_builder, in_transaction, json_option

TWILIO_ADDRESS = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")
META_PHONE_NUMBER_ID = re.compile(r"^\d{5,20}$")


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
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ...}.')
def channel_add(builder_id: uuid.UUID, provider: str, address: str, as_json: bool) -> None:
    """Route messages for ADDRESS to builder BUILDER_ID."""
    address = normalized_address(provider, address.strip())

    async def add(db: AsyncSession) -> uuid.UUID:
        await existing_builder(builder_id, db=db)
        try:
            added = await add_channel(builder_id, provider=provider, address=address, db=db)
        except IntegrityError as error:
            raise click.ClickException(f"{provider} address {address} is already routed") from error
        return added.id

    channel_id = in_transaction(add)
    emit(as_json, {"id": str(channel_id)}, str(channel_id))


@channel.command("list")
@click.argument("builder_id", type=click.UUID, required=False)
@json_option
def channel_list(builder_id: uuid.UUID | None, as_json: bool) -> None:
    """List the channels of BUILDER_ID (of every builder when left out)."""

    async def listing(db: AsyncSession) -> list[Channel]:
        if builder_id is not None:
            await existing_builder(builder_id, db=db)
        return await channels_of(builder_id, db=db)

    channels = in_transaction(listing)
    emit(
        as_json,
        [
            {
                "id": str(each.id),
                "builder_id": str(each.builder_id),
                "provider": each.provider,
                "address": each.address,
            }
            for each in channels
        ],
        "\n".join(f"{each.provider}  {each.address}  {each.builder_id}" for each in channels)
        or "no channels",
    )


@channel.command("remove")
@provider_option
@address_option
def channel_remove(provider: str, address: str) -> None:
    """Stop routing ADDRESS; its conversations are kept, its new messages go unanswered."""
    address = normalized_address(provider, address.strip())

    async def remove(db: AsyncSession) -> bool:
        return await remove_channel(provider, address, db=db)

    if not in_transaction(remove):
        raise click.ClickException(f"{provider} address {address} is not routed")
    click.echo(f"removed {provider} {address}")


def normalized_address(provider: str, address: str) -> str:
    """A Twilio address as `whatsapp:+E.164`, a Meta phone number id as digits."""
    if provider == "twilio":
        if address.startswith("+"):
            address = f"whatsapp:{address}"
        if not TWILIO_ADDRESS.match(address):
            raise click.BadParameter(
                f"{address!r} is not a WhatsApp number like whatsapp:+14155238886",
                param_hint="--address",
            )
    elif not META_PHONE_NUMBER_ID.match(address):
        raise click.BadParameter(
            f"{address!r} is not a Meta phone number id (digits only)", param_hint="--address"
        )
    return address
