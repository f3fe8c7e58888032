"""`wabot`: the operator's command line (migrations, builders, channels, documents, tokens,
the inbox, conversations and retries, templates, processes, demo)."""

from __future__ import annotations

import logging
import os
import sys
import uuid
from typing import Any, NoReturn

import click
from sqlalchemy.ext.asyncio import AsyncSession

from db import migrate
from db.core.logging_setup import configure_logging
from db.core.settings import ConfigurationError, get_settings
from db.tokens import create_token, revoke_token, tokens_of
from worker.cli.builder_commands import builder
from worker.cli.channel_commands import channel
from worker.cli.document_commands import docs
from worker.cli.inbox_commands import conversation, inbox
from worker.cli.retry_commands import retry
from worker.cli.support import emit, existing_builder, in_transaction, json_option
from worker.cli.template_commands import template
from worker.demo.bakery import DEFAULT_QUESTION


class OneLineErrors(click.Group):
    """`wabot` itself: every error is one line on stderr (`Error: …`), click's usage
    errors too (without the usage text: `-h` shows it), exit code 2 for a usage error
    and 1 for a refusal."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        try:
            done = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.exceptions.NoArgsIsHelpError as error:
            click.echo(error.format_message())  # `wabot` alone: the help, as -h shows it
            sys.exit(error.exit_code)
        except click.UsageError as error:
            click.echo(f"Error: {' '.join(error.format_message().split())}", err=True)
            sys.exit(error.exit_code)
        except click.ClickException as error:
            for line in error.format_message().splitlines():
                click.echo(f"Error: {line}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(done if isinstance(done, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wabot", message="wabot %(version)s")
def main() -> None:
    """Run a builder's AI agent on WhatsApp."""
    try:
        settings = get_settings()
    except ConfigurationError as error:
        problems = str(error).splitlines()
        raise click.ClickException(
            "\n".join(f"invalid configuration: {problem}" for problem in problems)
        ) from error
    configure_logging(settings)


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
@click.option("-v", "--verbose", is_flag=True, help="Name each migration as it is applied.")
def db_upgrade(verbose: bool) -> None:
    """Apply every pending migration (same as `alembic upgrade head`); quiet unless -v."""
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    migrate.upgrade()


@db.command("current")
def db_current() -> None:
    """Show the database's migration revision."""
    migrate.current()


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
        await existing_builder(builder_id, db=db)
        issued = await create_token(builder_id, name=name.strip() or "cli", db=db)
        return issued.id, issued.secret

    token_id, secret = in_transaction(create)
    emit(
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

    if not in_transaction(revoke):
        raise click.ClickException(f"no live token with id {token_id}")
    click.echo(f"revoked {token_id}")


@token.command("list")
@click.argument("builder_id", type=click.UUID)
@json_option
def token_list(builder_id: uuid.UUID, as_json: bool) -> None:
    """List BUILDER_ID's tokens (ids, names, whether revoked); never the secrets."""

    async def listing(db: AsyncSession) -> list[dict[str, str]]:
        return [
            {"id": str(row.id), "name": row.name, "state": "revoked" if row.revoked_at else "live"}
            for row in await tokens_of(builder_id, db=db)
        ]

    tokens = in_transaction(listing)
    emit(as_json, tokens, "\n".join(f"{t['id']}  {t['name']}  {t['state']}" for t in tokens))


SERVED_APPS = {
    "both": "webhooks.combined_app:app",
    "webhooks": "webhooks.app:app",
    "dashboard": "webhooks.dashboard.server:app",
}


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--only",
    type=click.Choice(["webhooks", "dashboard"]),
    help="Serve only the provider webhooks (Procfile `web`) or only the dashboard.",
)
def serve(host: str, port: int, only: str | None) -> None:
    """Run the webhook receiver and the dashboard on one port (uvicorn
    webhooks.combined_app:app). No access log: the receiver logs each message itself,
    with numbers masked. Requests must arrive whole within REQUEST_READ_TIMEOUT_SECONDS."""
    import uvicorn

    # log_config=None: uvicorn's records go through the handler configured above.
    uvicorn.run(
        SERVED_APPS[only or "both"],
        host=host,
        port=port,
        http="webhooks.read_deadline:ReadDeadlineProtocol",
        proxy_headers=False,
        access_log=False,
        log_config=None,
    )


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(celery_args: tuple[str, ...]) -> None:
    """Run a Celery worker: one process, WORKER_CONCURRENCY task threads feeding one
    event loop. SIGTERM lets running turns finish for WORKER_SHUTDOWN_GRACE_SECONDS, then
    hands the rest back. Extra arguments go to `celery worker`.

    Each process gets a node name of its own (`wabot-<pid>@<host>`, unless `-n` says
    otherwise): on RabbitMQ a second worker named like the first cannot start (its
    remote-control queue is the first one's, exclusively)."""
    from worker.celery_app import app

    settings = get_settings()
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={settings.worker_concurrency}",
            f"--queues={settings.celery_queue}",
            f"--hostname=wabot-{os.getpid()}@%h",
            "--loglevel=INFO",
            *celery_args,
        ]
    )


@main.command()
@click.option(
    "--serve", is_flag=True, help="Keep the receiver, dashboard and metrics up until Ctrl-C."
)
@click.option(
    "--builder",
    "builder_id",
    type=click.UUID,
    help="Talk to this builder's Twilio and Meta numbers instead of the Demo Bakery.",
)
@click.option(
    "--ask",
    "question",
    default=DEFAULT_QUESTION,
    show_default=True,
    help="A question for the builder's documents, asked on the first leg.",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), help="The receiver's port (default: any free one)."
)
def demo(serve: bool, builder_id: uuid.UUID | None, question: str, port: int | None) -> None:
    """Drive signed conversations through the real receiver and worker, showing the
    metrics as they move, then print the dashboard URL and a token to look at them."""
    from worker.demo.run import run_demo

    sys.exit(run_demo(serve=serve, builder_id=builder_id, question=question, port=port))


main.add_command(builder)
main.add_command(channel)
main.add_command(docs)
main.add_command(inbox)
main.add_command(conversation)
main.add_command(retry)
main.add_command(template)

if __name__ == "__main__":
    main()
