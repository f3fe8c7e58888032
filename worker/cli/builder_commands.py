"""`wabot builder …`: the businesses whose agents answer, and their settings."""

from __future__ import annotations

import uuid
from typing import Any

import click
from sqlalchemy.ext.asyncio import AsyncSession

from db.builders import (
    NUMBER_LIMITS,
    channels_of,
    create_builder,
    delete_builder,
    list_builders,
    setting_problems,
    update_builder,
)
from db.core.settings import get_settings
from db.document_store import documents_of, reindex, text_search_languages
from db.models import Builder, Channel
from worker.cli.support import emit, existing_builder, in_transaction, json_option

RESETTABLE = {
    "temperature": "temperature",
    "max-tokens": "max_tokens",
    "history-window": "history_window",
    "turns-per-minute": "turns_per_minute",
    "unsupported-reply": "unsupported_reply",
    "fallback-reply": "fallback_reply",
}


def _int_range(key: str) -> click.IntRange:
    low, high = NUMBER_LIMITS[key]
    return click.IntRange(int(low), int(high))


def _settings_options(creating: bool) -> Any:
    """The options `create` and `update` share; on `update` every one is optional."""
    options = [
        click.option(
            "--name",
            required=creating,
            help="The business's name (also the agent's name).",
        ),
        click.option("--instructions", required=creating, help="The agent's system instructions."),
        click.option("--model", default=None, help="OpenAI model name [default: DEFAULT_MODEL]."),
        click.option(
            "--temperature",
            type=click.FloatRange(*NUMBER_LIMITS["temperature"]),
            default=None,
            help="Model temperature, 0 to 2 [default: the model's].",
        ),
        click.option(
            "--max-tokens",
            type=_int_range("max_tokens"),
            default=None,
            help="Longest answer in tokens [default: the model's].",
        ),
        click.option(
            "--history-window",
            type=_int_range("history_window"),
            default=None,
            help="Session items sent to the model, 0 for all [default: HISTORY_WINDOW].",
        ),
        click.option(
            "--turns-per-minute",
            type=_int_range("turns_per_minute"),
            default=None,
            help="Turns per sender per minute, 0 for no limit [default: SENDER_TURNS_PER_MINUTE].",
        ),
        click.option(
            "--reactions-as-input/--no-reactions-as-input",
            default=None,
            help="Answer users' emoji reactions; otherwise they are recorded, not answered"
            " [default: not answered].",
        ),
        click.option(
            "--voice-replies/--no-voice-replies",
            default=None,
            help="Answer a voice note with a voice note (the reply spoken by TTS_MODEL)"
            " [default: text].",
        ),
        click.option(
            "--language",
            default=None,
            help="Text search language of its documents (Postgres: english, dutch, simple, …)"
            " [default: english].",
        ),
        click.option(
            "--unsupported-reply",
            default=None,
            help="What users get for messages the agent cannot read (e.g. a sticker-only order).",
        ),
        click.option(
            "--fallback-reply",
            default=None,
            help="What users get, once, when their message cannot be answered (model down).",
        ),
        json_option,
    ]

    def decorate(function: Any) -> Any:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


def _changes(values: dict[str, Any]) -> dict[str, Any]:
    """The builder columns the given options set (options left out are not changes)."""
    names = {"language": "search_language"}
    changes = {names.get(key, key): value for key, value in values.items() if value is not None}
    for key in ("name", "instructions", "model"):
        if key in changes:
            changes[key] = changes[key].strip()
    for key, problem in setting_problems(changes).items():
        option = {"search_language": "language"}.get(key, key).replace("_", "-")
        raise click.BadParameter(problem, param_hint=f"--{option}")
    return changes


async def _check_language(language: str | None, *, db: AsyncSession) -> None:
    if language is None:
        return
    known = await text_search_languages(db=db)
    if known is not None and language not in known:
        raise click.BadParameter(
            f"{language!r} is not a text search language here (one of: {', '.join(known)})",
            param_hint="--language",
        )


def _builder_data(
    builder: Builder, channels: list[Channel] | None = None, documents: list[str] | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": str(builder.id),
        "name": builder.name,
        "model": builder.model,
        "instructions": builder.instructions,
        "temperature": builder.temperature,
        "max_tokens": builder.max_tokens,
        "history_window": builder.history_window,
        "turns_per_minute": builder.turns_per_minute,
        "reactions_as_input": builder.reactions_as_input,
        "voice_replies": builder.voice_replies,
        "language": builder.search_language,
        "unsupported_reply": builder.unsupported_reply,
        "fallback_reply": builder.fallback_reply,
        "created_at": builder.created_at.isoformat(),
    }
    if channels is not None:
        data["channels"] = [{"provider": c.provider, "address": c.address} for c in channels]
    if documents is not None:
        data["documents"] = documents
    return data


@click.group()
def builder() -> None:
    """Builders: the businesses whose agents answer on WhatsApp."""


@builder.command("create")
@_settings_options(creating=True)
def builder_create(as_json: bool, **values: Any) -> None:
    """Create a builder and print its id."""
    changes = _changes(values)
    changes.setdefault("model", get_settings().default_model)

    async def create(db: AsyncSession) -> uuid.UUID:
        await _check_language(changes.get("search_language"), db=db)
        created = await create_builder(db=db, **changes)
        return created.id

    builder_id = in_transaction(create)
    emit(as_json, {"id": str(builder_id)}, str(builder_id))


@builder.command("list")
@json_option
def builder_list(as_json: bool) -> None:
    """List every builder: id, name and model."""

    async def listing(db: AsyncSession) -> list[Builder]:
        return await list_builders(db=db)

    builders = in_transaction(listing)
    emit(
        as_json,
        [_builder_data(each) for each in builders],
        "\n".join(f"{each.id}  {each.name}  {each.model}" for each in builders)
        or "no builders yet (wabot builder create)",
    )


@builder.command("show")
@click.argument("builder_id", type=click.UUID)
@json_option
def builder_show(builder_id: uuid.UUID, as_json: bool) -> None:
    """Show BUILDER_ID's settings, channels and documents."""

    async def show(db: AsyncSession) -> dict[str, Any]:
        found = await existing_builder(builder_id, db=db)
        documents = [document.name for document in await documents_of(builder_id, db=db)]
        return _builder_data(found, await channels_of(builder_id, db=db), documents)

    data = in_transaction(show)
    settings = get_settings()
    unset = {
        "temperature": "the model's",
        "max_tokens": "the model's",
        "history_window": f"HISTORY_WINDOW ({settings.history_window})",
        "turns_per_minute": f"SENDER_TURNS_PER_MINUTE ({settings.sender_turns_per_minute})",
        "unsupported_reply": "the default text",
        "fallback_reply": "the default text",
    }
    lines = [
        f"{key}: {unset.get(key, '') if value is None else value}"
        for key, value in data.items()
        if key not in ("channels", "documents")
    ]
    lines.append("channels: " + (", ".join(c["address"] for c in data["channels"]) or "none"))
    lines.append("documents: " + (", ".join(data["documents"]) or "none"))
    emit(as_json, data, "\n".join(lines))


@builder.command("update")
@click.argument("builder_id", type=click.UUID)
@_settings_options(creating=False)
@click.option(
    "--reset",
    "resets",
    multiple=True,
    type=click.Choice(sorted(RESETTABLE)),
    help="Go back to the default of a setting (repeatable).",
)
def builder_update(
    builder_id: uuid.UUID, as_json: bool, resets: tuple[str, ...], **values: Any
) -> None:
    """Change BUILDER_ID's settings; the ones not given stay as they are."""
    changes = _changes(values)
    for reset in resets:
        if RESETTABLE[reset] in changes:
            raise click.UsageError(f"--{reset} and --reset {reset} contradict each other")
        changes[RESETTABLE[reset]] = None
    if not changes:
        raise click.UsageError("nothing to change: give at least one setting (see --help)")

    async def update(db: AsyncSession) -> Builder:
        found = await existing_builder(builder_id, db=db)
        language = changes.get("search_language")
        await _check_language(language, db=db)
        relanguaged = language is not None and language != found.search_language
        updated = await update_builder(builder_id, changes, db=db)
        assert updated is not None
        if relanguaged:
            await reindex(builder_id, db=db)
        return updated

    updated = in_transaction(update)
    emit(as_json, _builder_data(updated), f"updated {builder_id}")


@builder.command("delete")
@click.argument("builder_id", type=click.UUID)
@click.confirmation_option(
    prompt="Delete the builder with its channels, conversations, tokens and documents?"
)
def builder_delete(builder_id: uuid.UUID) -> None:
    """Delete BUILDER_ID with its channels, conversations, tokens and documents."""

    async def remove(db: AsyncSession) -> bool:
        return await delete_builder(builder_id, db=db)

    if not in_transaction(remove):
        raise click.ClickException(f"no builder with id {builder_id}")
    click.echo(f"deleted {builder_id}")
