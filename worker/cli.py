"""`wabot`: the operator's command line (migrations, builders, channels, processes, demo)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import click
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db import migrate
from db.builders import add_channel, create_builder, get_builder
from db.engine import create_engine, create_sessionmaker
from db.settings import ConfigurationError, get_settings
from db.tokens import create_token, revoke_token, tokens_of

T = TypeVar("T")

TWILIO_ADDRESS = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")
META_PHONE_NUMBER_ID = re.compile(r"^\d{5,20}$")


def _in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in one committed unit of work on the configured database."""

    async def run() -> T:
        engine = create_engine(get_settings().resolved_database_url)
        try:
            async with create_sessionmaker(engine).begin() as db:
                return await work(db)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data) if as_json else text)


@click.group()
def main() -> None:
    """Run a builder's AI agent on WhatsApp."""
    try:
        get_settings()
    except ConfigurationError as error:
        raise click.ClickException(f"invalid configuration: {error}") from error


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration (same as `alembic upgrade head`)."""
    migrate.upgrade()


@db.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    migrate.current()


@main.group()
def builder() -> None:
    """Builders: the businesses whose agents answer on WhatsApp."""


@builder.command("create")
@click.option("--name", required=True, help="The business's name (also the agent's name).")
@click.option("--instructions", required=True, help="The agent's system instructions.")
@click.option("--model", default=None, help="OpenAI model name [default: DEFAULT_MODEL].")
@click.option(
    "--unsupported-reply",
    default=None,
    help="What users get for messages the agent cannot read (e.g. a sticker-only order).",
)
@click.option(
    "--fallback-reply",
    default=None,
    help="What users get, once, when their message cannot be answered (model down for good).",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ...}.')
def builder_create(
    name: str,
    instructions: str,
    model: str | None,
    unsupported_reply: str | None,
    fallback_reply: str | None,
    as_json: bool,
) -> None:
    """Create a builder and print its id."""
    if not name.strip() or not instructions.strip():
        raise click.BadParameter("must not be empty", param_hint="--name/--instructions")
    chosen_model = model or get_settings().default_model

    async def create(db: AsyncSession) -> uuid.UUID:
        created = await create_builder(
            name=name.strip(),
            instructions=instructions,
            model=chosen_model,
            unsupported_reply=unsupported_reply,
            fallback_reply=fallback_reply,
            db=db,
        )
        return created.id

    builder_id = _in_transaction(create)
    _emit(as_json, {"id": str(builder_id)}, str(builder_id))


@main.group()
def channel() -> None:
    """Channels: the WhatsApp numbers that route users to a builder."""


@channel.command("add")
@click.argument("builder_id", type=click.UUID)
@click.option("--provider", type=click.Choice(["twilio", "meta"]), required=True)
@click.option(
    "--address",
    required=True,
    help="Twilio: whatsapp:+E.164 number (a bare +E.164 is accepted). Meta: phone number id.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ...}.')
def channel_add(builder_id: uuid.UUID, provider: str, address: str, as_json: bool) -> None:
    """Route messages for ADDRESS to builder BUILDER_ID."""
    address = _normalized_address(provider, address.strip())

    async def add(db: AsyncSession) -> uuid.UUID:
        if await get_builder(builder_id, db=db) is None:
            raise click.ClickException(f"no builder with id {builder_id}")
        try:
            added = await add_channel(builder_id, provider=provider, address=address, db=db)
        except IntegrityError as error:
            raise click.ClickException(f"{provider} address {address} is already routed") from error
        return added.id

    channel_id = _in_transaction(add)
    _emit(as_json, {"id": str(channel_id)}, str(channel_id))


def _normalized_address(provider: str, address: str) -> str:
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


@main.group()
def token() -> None:
    """Builders' API tokens for the dashboard and the JSON API (stored hashed)."""


@token.command("create")
@click.argument("builder_id", type=click.UUID)
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
@click.option("--json", "as_json", is_flag=True, help='Print {"id": ..., "token": ...}.')
def token_create(builder_id: uuid.UUID, name: str, as_json: bool) -> None:
    """Create a token for BUILDER_ID and print it; it is shown this once only."""

    async def create(db: AsyncSession) -> tuple[uuid.UUID, str]:
        if await get_builder(builder_id, db=db) is None:
            raise click.ClickException(f"no builder with id {builder_id}")
        issued = await create_token(builder_id, name=name.strip() or "cli", db=db)
        return issued.id, issued.secret

    token_id, secret = _in_transaction(create)
    _emit(
        as_json,
        {"id": str(token_id), "token": secret},
        f"token id: {token_id}\ntoken:    {secret}\n(shown once: it is stored hashed)",
    )


@token.command("revoke")
@click.argument("token_id", type=click.UUID)
def token_revoke(token_id: uuid.UUID) -> None:
    """Revoke token TOKEN_ID: its API calls and signed-in browsers are refused from now on."""

    async def revoke(db: AsyncSession) -> bool:
        return await revoke_token(token_id, db=db)

    if not _in_transaction(revoke):
        raise click.ClickException(f"no live token with id {token_id}")
    click.echo(f"revoked {token_id}")


@token.command("list")
@click.argument("builder_id", type=click.UUID)
def token_list(builder_id: uuid.UUID) -> None:
    """List BUILDER_ID's tokens (ids, names, whether revoked); never the secrets."""

    async def listing(db: AsyncSession) -> list[str]:
        return [
            f"{row.id}  {row.name}  {'revoked' if row.revoked_at else 'live'}"
            for row in await tokens_of(builder_id, db=db)
        ]

    for line in _in_transaction(listing):
        click.echo(line)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def serve(host: str, port: int) -> None:
    """Run the webhook receiver (uvicorn webhooks.app:app). No access log: the receiver
    logs each message itself, with numbers masked."""
    import uvicorn

    uvicorn.run("webhooks.app:app", host=host, port=port, proxy_headers=False, access_log=False)


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker: one process, WORKER_CONCURRENCY task threads feeding one
    event loop. SIGTERM lets running turns finish for WORKER_SHUTDOWN_GRACE_SECONDS, then
    hands the rest back. Extra arguments go to `celery worker`."""
    from worker.app import app

    settings = get_settings()
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={settings.worker_concurrency}",
            f"--queues={settings.celery_queue}",
            "--loglevel=INFO",
            *celery_args,
        ]
    )


@main.command()
@click.option(
    "--serve", is_flag=True, help="Keep the receiver and the dashboard running until Ctrl-C."
)
def demo(serve: bool) -> None:
    """Drive signed conversations through the real receiver and worker, then print the
    dashboard URL and a token to look at them."""
    from worker.demo import run_demo

    sys.exit(run_demo(serve=serve))


if __name__ == "__main__":
    main()
