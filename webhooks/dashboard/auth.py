"""Who is asking: the admin (`ADMIN_TOKEN`) or one builder (an API token), from
`Authorization: Bearer` or the signed sign-in cookie; everything else is refused. The
cookie names a sign-in kept in the database (`db.sign_ins`), which signing out ends.

`Guard` wraps the dashboard app and denies by default: only the paths in `PUBLIC`
are served without a principal. The conversation page's live updates (`LIVE_UPDATES`)
check a cookie's sign-in themselves, in the one statement each update costs
(`db.live_updates`): `Guard` hands them the cookie's secret unchecked, and only when
there is one. Requests authenticated by the cookie must also prove
they come from our own pages for anything that changes state (CSRF: the session's
token in the form or the `X-CSRF-Token` header), checked where bodies are read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from db.core.settings import Settings
from db.sign_ins import SignedIn, SignInSecret, end_sign_in, signed_in, start_sign_in
from db.tokens import live_token
from webhooks.dashboard.throttle import WrongTokens

DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError, ConnectionError)
PUBLIC = frozenset({"/login"})
PUBLIC_PREFIXES = ("/static/",)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGN_IN_KEY = "sign_in"
"""The cookie's field holding the sign-in's secret (`db.sign_ins`)."""
LIVE_UPDATES = re.compile(r"^/sessions/[^/]+/updates$")
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Principal:
    """The admin (`builder_id` None) or a builder, and how they proved it."""

    builder_id: uuid.UUID | None
    token_id: uuid.UUID | None = None
    via_cookie: bool = False

    @property
    def is_admin(self) -> bool:
        return self.builder_id is None

    def may_see(self, builder_id: uuid.UUID) -> bool:
        return self.is_admin or self.builder_id == builder_id


def principal(request: HTTPConnection) -> Principal:
    """The request's principal; `Guard` guarantees one on every non-public path."""
    found = request.state.principal
    assert isinstance(found, Principal)
    return found


def asker(request: HTTPConnection) -> SignInSecret | SignedIn:
    """Who asks for a live update: the principal `Guard` found (by a bearer token), or
    the cookie's sign-in it left unchecked, for the update's statement to check."""
    found = request.state.principal
    if isinstance(found, Principal):
        return SignedIn(builder_id=found.builder_id, token_id=found.token_id)
    unchecked = request.state.unchecked_sign_in
    assert isinstance(unchecked, SignInSecret)
    return unchecked


def require_builder(request: HTTPConnection, builder_id: uuid.UUID) -> Principal:
    """Another builder's data does not exist for this principal: 404, not 403."""
    who = principal(request)
    if not who.may_see(builder_id):
        raise HTTPException(404, "no such builder")
    return who


def require_admin(request: HTTPConnection) -> None:
    if not principal(request).is_admin:
        raise HTTPException(403, "only the admin sees every builder")


def admin_key(settings: Settings, signing_secret: str) -> str | None:
    """What an admin's sign-in row carries (`DashboardSignIn.admin_key`): an HMAC of
    `ADMIN_TOKEN` under the cookie's signing secret, so changing the token signs every
    admin out and the table alone tells nothing about it."""
    if settings.admin_token is None:
        return None
    token = settings.admin_token.get_secret_value().encode()
    return hmac.new(signing_secret.encode(), token, hashlib.sha256).hexdigest()


async def principal_for_token(token: str, *, request: HTTPConnection) -> Principal | None:
    """The admin or the builder whose token this is; None when it is nobody's."""
    settings: Settings = request.app.state.settings
    admin = settings.admin_token
    if admin is not None and hmac.compare_digest(_utf8(token), _utf8(admin.get_secret_value())):
        return Principal(builder_id=None)
    async with request.app.state.runtime.sessionmaker() as db:
        found = await live_token(token, db=db)
    if found is None:
        return None
    return Principal(builder_id=found.builder_id, token_id=found.id)


async def _from_cookie(request: HTTPConnection) -> Principal | None:
    secret = request.session.get(SIGN_IN_KEY)
    if not isinstance(secret, str):
        return None
    async with request.app.state.runtime.sessionmaker() as db:
        found = await signed_in(secret, admin_key=request.app.state.admin_key, db=db)
    if found is None:
        return None
    return Principal(builder_id=found.builder_id, token_id=found.token_id, via_cookie=True)


async def sign_in(request: Request, who: Principal) -> None:
    """Remember `who` server-side and in the signed cookie (only a random secret), with a
    fresh CSRF token; a sign-in this browser already had ends."""
    previous = request.session.get(SIGN_IN_KEY)
    async with request.app.state.runtime.sessionmaker.begin() as db:
        if isinstance(previous, str):
            await end_sign_in(previous, db=db)
        secret = await start_sign_in(
            SignedIn(builder_id=who.builder_id, token_id=who.token_id),
            admin_key=request.app.state.admin_key,
            lifetime_seconds=request.app.state.settings.session_max_age_seconds,
            db=db,
        )
    request.session.clear()
    request.session[SIGN_IN_KEY] = secret
    request.session["csrf"] = secrets.token_urlsafe(24)


async def sign_out(request: Request) -> None:
    """End this browser's sign-in for good: a copy of its cookie signs nobody in."""
    secret = request.session.get(SIGN_IN_KEY)
    if isinstance(secret, str):
        async with request.app.state.runtime.sessionmaker.begin() as db:
            await end_sign_in(secret, db=db)
    request.session.clear()


def csrf_token(request: HTTPConnection) -> str:
    """This browser's CSRF token (made on first use, e.g. for the sign-in form)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def _csrf_ok(request: HTTPConnection, offered: str | None) -> bool:
    expected = request.session.get("csrf")
    if not (expected and offered):
        return False
    # Compared as bytes: `compare_digest` refuses strings that are not ASCII.
    return hmac.compare_digest(_utf8(offered), _utf8(str(expected)))


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


async def checked_form(request: Request) -> FormData:
    """The submitted form, refused (403) without this browser's CSRF token when the
    cookie signed it in (a bearer token is no ambient credential: no CSRF to fear)."""
    form = await request.form()
    who = getattr(request.state, "principal", None)
    if who is not None and not who.via_cookie:
        return form
    offered = form.get(CSRF_FIELD)
    if not _csrf_ok(request, offered if isinstance(offered, str) else None):
        raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page")
    return form


def check_csrf_header(request: Request) -> None:
    """For JSON calls: cookie-authenticated changes need `X-CSRF-Token`; bearer calls
    carry no ambient credential and need none."""
    who = principal(request)
    if who.via_cookie and request.method not in SAFE_METHODS:
        if not _csrf_ok(request, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")


class Unauthenticated(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": "Bearer"})


class Guard:
    """ASGI middleware: resolve the principal of every request, refuse 401 without one
    (the response made by `deny`: JSON for the API, the sign-in page for pages)."""

    def __init__(
        self, app: ASGIApp, *, deny: Callable[[HTTPConnection, HTTPException], Response]
    ) -> None:
        self.app = app
        self.deny = deny

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        connection = Request(scope, receive)
        path = scope["path"]
        who = None
        header = connection.headers.get("authorization", "")
        wrong_tokens: WrongTokens = connection.app.state.wrong_tokens
        try:
            if header:
                wrong_tokens.check(connection)
                scheme, _, token = header.partition(" ")
                if scheme.lower() == "bearer" and token.strip():
                    who = await principal_for_token(token.strip(), request=connection)
                if who is None:
                    wrong_tokens.record(connection)
            else:
                secret = connection.session.get(SIGN_IN_KEY)
                if isinstance(secret, str) and LIVE_UPDATES.match(path):
                    state = scope.setdefault("state", {})
                    state["principal"] = None
                    admin = connection.app.state.admin_key
                    state["unchecked_sign_in"] = SignInSecret(secret, admin_key=admin)
                    await self.app(scope, receive, send)
                    return
                who = await _from_cookie(connection)
        except HTTPException as throttled:
            await self.deny(connection, throttled)(scope, receive, send)
            return
        except DATABASE_ERRORS:
            down = HTTPException(503, "database unavailable, retry later")
            await self.deny(connection, down)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = who
        if who is None and path not in PUBLIC and not path.startswith(PUBLIC_PREFIXES):
            reason = "invalid token" if header else "sign in or send Authorization: Bearer"
            await self.deny(connection, Unauthenticated(reason))(scope, receive, send)
            return
        await self.app(scope, receive, send)
