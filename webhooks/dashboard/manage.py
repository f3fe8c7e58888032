"""Managing builders in the browser: their settings, numbers, documents and tokens,
through the same `db` functions as the `wabot` CLI and with the dashboard's
permissions (a builder's token sees and changes only its builder; only the admin
creates and deletes builders).

A refused change shows the page again with the reason next to the form (4xx, never an
error page); a done one redirects back with a notice. A new token's secret is shown on
the page that made it, never in a URL.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.exc import IntegrityError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from db.activity import daily_activity
from db.addresses import checked_channel_address
from db.builders import (
    AlreadyRouted,
    add_channel,
    channels_of,
    create_builder,
    credentials_description,
    delete_builder,
    remove_channel,
    update_builder,
)
from db.core.credentials import NEW_KEY_HINT, ChannelCredentials, MetaCredentials, TwilioCredentials
from db.core.settings import Settings
from db.dashboard_queries import builders_overview
from db.document_files import DocumentError, chunk_text, document_name, document_text
from db.document_store import documents_of, remove_document, replace_document
from db.models import ApiToken, Builder, Channel
from db.tokens import create_token, revoke_token, tokens_of
from webhooks.dashboard.auth import checked_form, principal
from webhooks.dashboard.builder_form import BuilderForm, builder_form, typed_from
from webhooks.dashboard.charts import activity_charts
from webhooks.dashboard.lookups import path_uuid, visible_builder
from webhooks.dashboard.rendering import page

TOKEN_NAME_CHARACTERS = 100
CREDENTIAL_FIELDS = ("account_sid", "auth_token", "access_token", "app_secret")


def _back(builder_id: uuid.UUID, notice: str) -> Response:
    return RedirectResponse(f"/builders/{builder_id}/settings?{urlencode({'notice': notice})}", 303)


def _admin_only(request: Request, what: str) -> None:
    if not principal(request).is_admin:
        raise HTTPException(403, f"only the admin {what}")


async def builders_page(request: Request, *, form: BuilderForm | None = None) -> Response:
    """The admin's overview: every builder, the form making a new one, all activity."""
    _admin_only(request, "sees every builder")
    async with request.app.state.runtime.sessionmaker() as db:
        overview = await builders_overview(db=db)
        activity = await daily_activity(None, db=db)
    return page(
        request,
        "builders.html",
        {
            "builders": overview,
            "charts": activity_charts(activity),
            "charts_heading": "All builders, last 14 days",
            "typed": form.typed if form else {},
            "problems": form.problems if form else {},
        },
        status_code=400 if form else 200,
    )


async def create(request: Request) -> Response:
    _admin_only(request, "creates builders")
    form = await checked_form(request)
    settings: Settings = request.app.state.settings
    read = builder_form(form, default_model=settings.default_model)
    if read.problems:
        return await builders_page(request, form=read)
    async with request.app.state.runtime.sessionmaker.begin() as db:
        created = await create_builder(db=db, **read.changes)
    return _back(created.id, f"Builder {created.name} created.")


async def settings_page(
    request: Request,
    builder: Builder | None = None,
    *,
    status_code: int = 200,
    **shown: Any,
) -> Response:
    """The builder's page of settings, numbers, documents, tokens and charts; `shown`:
    what a refused form or a new token adds."""
    builder = builder or await visible_builder(request)
    settings: Settings = request.app.state.settings
    async with request.app.state.runtime.sessionmaker() as db:
        channels = await channels_of(builder.id, db=db)
        documents = await documents_of(builder.id, db=db)
        tokens = await tokens_of(builder.id, db=db)
        activity = await daily_activity(builder.id, db=db)
    context = {
        "builder": builder,
        "typed": typed_from(builder),
        "problems": {},
        "numbers": [
            (channel, credentials_description(channel, settings.credentials_cipher))
            for channel in channels
        ],
        "documents": documents,
        "tokens": tokens,
        "charts": activity_charts(activity),
        "charts_heading": "Last 14 days",
        "notice": request.query_params.get("notice"),
        "errors": {},
        "number_typed": {},
        "new_token": None,
        **shown,
    }
    return page(request, "builder.html", context, status_code=status_code)


async def update(request: Request) -> Response:
    builder = await visible_builder(request)
    form = await checked_form(request)
    settings: Settings = request.app.state.settings
    read = builder_form(form, default_model=settings.default_model)
    if read.problems:
        return await settings_page(
            request, builder, status_code=400, typed=read.typed, problems=read.problems
        )
    async with request.app.state.runtime.sessionmaker.begin() as db:
        await update_builder(builder.id, read.changes, db=db)
    return _back(builder.id, "Settings saved.")


async def delete(request: Request) -> Response:
    builder = await visible_builder(request)
    _admin_only(request, "deletes builders")
    form = await checked_form(request)
    if form.get("confirm") != "yes":
        return await settings_page(
            request,
            builder,
            status_code=400,
            errors={"delete": "Tick the box to confirm: everything of this builder goes."},
        )
    async with request.app.state.runtime.sessionmaker.begin() as db:
        await delete_builder(builder.id, db=db)
    return RedirectResponse("/builders", 303)


async def add_number(request: Request) -> Response:
    """Route a Twilio or Meta number to the builder, with its own credentials (encrypted
    with CREDENTIALS_KEY) or the global ones."""
    builder = await visible_builder(request)
    form = await checked_form(request)
    typed = {
        key: value.strip() if isinstance(value := form.get(key), str) else ""
        for key in ("provider", "address", *CREDENTIAL_FIELDS)
    }
    shown = {"provider": typed["provider"], "address": typed["address"][:64]}

    async def refused(reason: str, status_code: int = 400) -> Response:
        return await settings_page(
            request,
            builder,
            status_code=status_code,
            errors={"numbers": reason},
            number_typed=shown,
        )

    try:
        address = checked_channel_address(typed["provider"], typed["address"])
        credentials = _own_credentials(typed)
    except ValueError as problem:
        return await refused(str(problem))
    stored = None
    if credentials is not None:
        cipher = request.app.state.settings.credentials_cipher
        if cipher is None:
            return await refused(
                "A number's own credentials are stored encrypted with CREDENTIALS_KEY, which"
                f" is not set on this server ({NEW_KEY_HINT} and set it); or leave them empty"
                " to use the global ones."
            )
        stored = cipher.encrypt(credentials)
    try:
        async with request.app.state.runtime.sessionmaker.begin() as db:
            await add_channel(
                builder.id, provider=typed["provider"], address=address, credentials=stored, db=db
            )
    except AlreadyRouted as taken:
        return await refused(_taken_reason(request, builder, taken), 409)
    except IntegrityError:
        return await refused(f"{address} was just routed by someone else.", 409)
    return _back(builder.id, f"Number {address} added.")


def _own_credentials(typed: dict[str, str]) -> ChannelCredentials | None:
    """The number's own credentials from the form, None when none were given; a Twilio
    SID needs its token and a Meta number takes no Twilio field (and the other way)."""
    given = {key: typed[key] for key in CREDENTIAL_FIELDS if typed[key]}
    if not given:
        return None
    if typed["provider"] == "twilio":
        if set(given) - {"account_sid", "auth_token"}:
            raise ValueError("A Twilio number takes an account SID and an auth token only.")
        if set(given) != {"account_sid", "auth_token"}:
            raise ValueError("Give both the account SID and its auth token, or neither.")
        return TwilioCredentials(account_sid=given["account_sid"], auth_token=given["auth_token"])
    if set(given) - {"access_token", "app_secret"}:
        raise ValueError("A Meta number takes an access token and an app secret only.")
    return MetaCredentials(
        access_token=given.get("access_token"), app_secret=given.get("app_secret")
    )


def _taken_reason(request: Request, builder: Builder, taken: AlreadyRouted) -> str:
    """The admin learns who holds the number; a builder only that it cannot have it."""
    if taken.holder_id == builder.id:
        return "That number is routed to this builder already."
    if principal(request).is_admin:
        return f"That number is already routed to builder {taken.holder_name}."
    return "That number cannot be added: it is not available."


async def remove_number(request: Request) -> Response:
    builder = await visible_builder(request)
    await checked_form(request)
    channel_id = path_uuid(request, "channel_id")
    async with request.app.state.runtime.sessionmaker.begin() as db:
        channel = await db.get(Channel, channel_id)
        if channel is None or channel.builder_id != builder.id:
            return await settings_page(
                request, builder, status_code=404, errors={"numbers": "No such number."}
            )
        await remove_channel(channel.provider, channel.address, db=db)
    return _back(builder.id, f"Number {channel.address} removed; its conversations stay.")


async def upload_document(request: Request) -> Response:
    """Store an uploaded .txt, .md or .pdf as a document (one of that name is replaced),
    read and chunked as `wabot docs add` does."""
    builder = await visible_builder(request)
    form = await checked_form(request)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return await settings_page(
                request, builder, status_code=400, errors={"documents": "Choose a file to upload."}
            )
        try:
            name = document_name(upload.filename)
            chunks = chunk_text(document_text(name, await upload.read()))
        except DocumentError as problem:
            return await settings_page(
                request, builder, status_code=400, errors={"documents": str(problem)}
            )
    finally:
        await form.close()
    async with request.app.state.runtime.sessionmaker.begin() as db:
        await replace_document(builder.id, name, chunks, db=db)
    return _back(builder.id, f"Document {name} added ({len(chunks)} chunks).")


async def remove_document_form(request: Request) -> Response:
    builder = await visible_builder(request)
    form = await checked_form(request)
    name = form.get("name")
    async with request.app.state.runtime.sessionmaker.begin() as db:
        removed = (
            isinstance(name, str)
            and "\x00" not in name  # no document's name has one, and Postgres refuses it
            and await remove_document(builder.id, name, db=db)
        )
    if not removed:
        return await settings_page(
            request, builder, status_code=404, errors={"documents": "No such document."}
        )
    return _back(builder.id, f"Document {name} removed.")


async def add_token(request: Request) -> Response:
    builder = await visible_builder(request)
    form = await checked_form(request)
    name = form.get("name")
    name = name.strip().replace("\x00", "") if isinstance(name, str) else ""
    if not name or len(name) > TOKEN_NAME_CHARACTERS:
        return await settings_page(
            request,
            builder,
            status_code=400,
            errors={"tokens": f"Name the token (1 to {TOKEN_NAME_CHARACTERS} characters)."},
        )
    async with request.app.state.runtime.sessionmaker.begin() as db:
        issued = await create_token(builder.id, name=name, db=db)
    return await settings_page(request, builder, new_token=issued.secret)


async def revoke(request: Request) -> Response:
    builder = await visible_builder(request)
    await checked_form(request)
    token_id = path_uuid(request, "token_id")
    async with request.app.state.runtime.sessionmaker.begin() as db:
        token = await db.get(ApiToken, token_id)
        revoked = (
            token is not None
            and token.builder_id == builder.id
            and await revoke_token(token_id, db=db)
        )
    if not revoked:
        return await settings_page(
            request, builder, status_code=404, errors={"tokens": "No such live token."}
        )
    return _back(builder.id, "Token revoked: its API calls and sign-ins are refused from now on.")
