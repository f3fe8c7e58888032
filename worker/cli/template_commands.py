"""`wabot template …`: the approved WhatsApp templates a builder's operators may send
outside the 24-hour window: Meta's read from the business account through the Graph
API, Twilio's Content templates added by their ContentSid."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from db.builders import channels_of
from db.core.credentials import MetaCredentials, UnreadableCredentials, open_credentials
from db.core.settings import get_settings
from db.models import Channel, MessageTemplate
from db.templates import TemplateRow, store_templates, templates_of
from worker.channels.meta_templates import TemplateListError, business_templates
from worker.cli.support import emit, existing_builder, in_transaction, json_option

CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$")
BUSINESS_ACCOUNT_ID = re.compile(r"^\d{5,20}$")


@click.group()
def template() -> None:
    """Approved WhatsApp templates: what reaches a user after the 24-hour window."""


business_account_option = click.option(
    "--business-account-id",
    help="Meta: the WhatsApp Business Account id [default: META_BUSINESS_ACCOUNT_ID].",
)


@template.command("list")
@click.argument("builder_id", type=click.UUID)
@business_account_option
@json_option
def template_list(builder_id: uuid.UUID, business_account_id: str | None, as_json: bool) -> None:
    """List BUILDER_ID's templates: Meta's as the business account has them now (read
    through the Graph API when the builder has a Meta number), and those stored."""
    meta_channel, stored = in_transaction(_builder_templates(builder_id))
    rows = [_stored_json(each) for each in stored]
    if meta_channel is not None:
        known = {(row["name"], row["language"]) for row in rows if row["provider"] == "meta"}
        for listed in _read_meta(meta_channel, business_account_id):
            if (listed.name, listed.language) not in known:
                rows.append(
                    {
                        "provider": "meta",
                        "name": listed.name,
                        "language": listed.language,
                        "status": listed.status,
                        "body": listed.body,
                        "stored": False,
                    }
                )
    emit(
        as_json,
        rows,
        "\n".join(
            f"{row['provider']}  {row['name']}  {row['language']}  {row['status']}"
            f"{'' if row['stored'] else '  (not synced)'}  {row['body']!r}"
            for row in rows
        )
        or "no templates",
    )


@template.command("sync")
@click.argument("builder_id", type=click.UUID)
@business_account_option
def template_sync(builder_id: uuid.UUID, business_account_id: str | None) -> None:
    """Store the Meta business account's templates for BUILDER_ID (added or updated by
    name and language; their status too: only approved ones can be sent)."""
    meta_channel, _ = in_transaction(_builder_templates(builder_id))
    if meta_channel is None:
        raise click.ClickException(f"builder {builder_id} has no Meta number")
    listed = _read_meta(meta_channel, business_account_id)

    async def store(db: AsyncSession) -> None:
        await store_templates(builder_id, "meta", listed, db=db)

    in_transaction(store)
    approved = sum(1 for row in listed if row.status == "APPROVED")
    click.echo(f"synced {len(listed)} Meta template(s), {approved} approved")


@template.command("add")
@click.argument("builder_id", type=click.UUID)
@click.option("--content-sid", required=True, help="Twilio: the Content template's SID (HX…).")
@click.option("--name", required=True, help="What operators see it as.")
@click.option("--language", default="en", show_default=True, help="Its language code.")
@click.option("--body", required=True, help="Its text, with {{1}}, {{2}}… where the variables go.")
def template_add(
    builder_id: uuid.UUID, content_sid: str, name: str, language: str, body: str
) -> None:
    """Add (or update) a Twilio Content template approved for WhatsApp."""
    if not CONTENT_SID.match(content_sid):
        raise click.BadParameter(
            "a Content SID is HX followed by 32 hexadecimal digits", param_hint="--content-sid"
        )
    if not LANGUAGE.match(language):
        raise click.BadParameter("a language code like en or en_US", param_hint="--language")
    name, body = name.strip(), body.strip()
    if not name or not body:
        raise click.UsageError("--name and --body must not be empty")
    row = TemplateRow(
        name=name, language=language, status="APPROVED", body=body, content_sid=content_sid
    )

    async def add(db: AsyncSession) -> None:
        await existing_builder(builder_id, db=db)
        await store_templates(builder_id, "twilio", [row], db=db)

    in_transaction(add)
    click.echo(f"added Twilio template {name} ({language})")


def _builder_templates(
    builder_id: uuid.UUID,
) -> Callable[[AsyncSession], Awaitable[tuple[Channel | None, list[MessageTemplate]]]]:
    """The builder's first Meta number (None without one) and its stored templates."""

    async def read(db: AsyncSession) -> tuple[Channel | None, list[MessageTemplate]]:
        await existing_builder(builder_id, db=db)
        meta = [each for each in await channels_of(builder_id, db=db) if each.provider == "meta"]
        return (meta[0] if meta else None), await templates_of(builder_id, db=db)

    return read


def _stored_json(stored: MessageTemplate) -> dict[str, Any]:
    row: dict[str, Any] = {
        "provider": stored.provider,
        "name": stored.name,
        "language": stored.language,
        "status": stored.status,
        "body": stored.body,
        "stored": True,
    }
    if stored.content_sid:
        row["content_sid"] = stored.content_sid
    return row


def _read_meta(channel: Channel, business_account_id: str | None) -> list[TemplateRow]:
    """The business account's templates, with the Meta number's access token (its own,
    else META_ACCESS_TOKEN)."""
    settings = get_settings()
    account = business_account_id or settings.meta_business_account_id
    if account is None:
        raise click.UsageError(
            "give --business-account-id or set META_BUSINESS_ACCOUNT_ID "
            "(the WhatsApp Business Account id, in Meta's WhatsApp Manager)"
        )
    if not BUSINESS_ACCOUNT_ID.match(account):
        raise click.BadParameter("digits only", param_hint="--business-account-id")
    token = settings.meta_access_token.get_secret_value() if settings.meta_access_token else None
    if channel.credentials is not None:
        try:
            own = open_credentials(settings.credentials_cipher, "meta", channel.credentials)
        except UnreadableCredentials as error:
            raise click.ClickException(str(error)) from None
        if isinstance(own, MetaCredentials) and own.access_token is not None:
            token = own.access_token
    if token is None:
        raise click.ClickException(
            "no Meta access token: set META_ACCESS_TOKEN or give the number its own"
        )
    try:
        return asyncio.run(
            business_templates(
                business_account_id=account,
                access_token=token,
                api_base_url=settings.meta_api_base_url,
                api_version=settings.meta_api_version,
                timeout_seconds=settings.meta_timeout_seconds,
            )
        )
    except TemplateListError as error:
        raise click.ClickException(f"could not read the templates: {error}") from None
