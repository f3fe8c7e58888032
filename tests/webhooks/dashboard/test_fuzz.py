"""Fuzzed over HTTP against the real receiver, no answer is a 5xx: schemathesis makes
valid and invalid requests from `/api/openapi.json` as the admin and as a builder, and
hypothesis posts arbitrary forms and bodies to every form route, from a signed-in
browser with its CSRF token, without it, and with a mangled one.

Example counts are chosen so both run in well under a minute on a busy machine."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import Case
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from tests.conftest import ADMIN_TOKEN
from tests.fakes.openai import FakeOpenAI
from tests.fakes.twilio import FakeTwilio
from tests.webhooks.dashboard.conftest import World

API_EXAMPLES = 30
"""Per operation, generation mode (valid, invalid) and principal: 720 requests."""
FORM_EXAMPLES = 250
"""Over every form route."""
FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
API_OPERATIONS = {
    "GET /api/builders/{builder_id}/sessions",
    "GET /api/sessions/{session_id}/items",
    "POST /api/chat/{builder_id}",
    "POST /api/sessions/{session_id}/reply",
    "POST /api/sessions/{session_id}/template",
    "GET /media/{media_id}",
}
"""Every operation but the description itself, which schemathesis leaves out."""
FORM_ROUTES = [
    "/login",
    "/logout",
    "/sessions/{session}/pause",
    "/sessions/{session}/resume",
    "/sessions/{session}/reply",
    "/sessions/{session}/clear",
    "/sessions/{session}/template",
    "/sessions/{session}/turns/{turn}/retry",
    "/builders",
    "/builders/{builder}/settings",
    "/builders/{builder}/numbers",
    "/builders/{builder}/numbers/{channel}/remove",
    "/builders/{builder}/documents",
    "/builders/{builder}/documents/remove",
    "/builders/{builder}/tokens",
    "/builders/{builder}/delete",
]


@pytest.mark.parametrize("who", ["admin", "builder"])
def test_the_json_api_never_answers_5xx(
    receiver: str, world: World, fake_openai: FakeOpenAI, who: str
) -> None:
    headers = world.headers(who)
    schema = schemathesis.openapi.from_url(f"{receiver}/api/openapi.json", headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} == API_OPERATIONS
    ids = {
        "builder_id": str(world.builder),
        "session_id": str(world.session),
        "media_id": str(world.media),
    }
    for operation in operations:
        # The world's own ids: random ones only ever meet the 404 before any handler.
        known = {parameter.name: ids[parameter.name] for parameter in operation.path_parameters}
        for mode in GenerationMode:

            @settings(FUZZ_SETTINGS, max_examples=API_EXAMPLES)
            @given(case=operation.as_strategy(mode, path_parameters=known, headers=headers))
            def answers_below_500(case: Case) -> None:
                response = case.call(base_url=receiver, timeout=60)
                case.validate_response(response, checks=[not_a_server_error])

            answers_below_500()


@dataclass
class Browser:
    """A browser signed in as the world's builder, signed in again after a form that may
    have signed it out or in as someone else."""

    base_url: str
    token: str
    client: httpx.Client = field(init=False)
    csrf: str = field(init=False)

    def __post_init__(self) -> None:
        self.sign_in()

    def sign_in(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        self.client = httpx.Client(base_url=self.base_url, timeout=60)
        form = self.client.get("/login")
        signed_in = self.client.post(
            "/login", data={"token": self.token, "csrf_token": _csrf_of(form.text)}
        )
        assert signed_in.status_code == 303, signed_in.text
        self.csrf = _csrf_of(self.client.get("/login").text)


def _csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


field_names = st.sampled_from(
    [
        "csrf_token",
        "token",
        "next",
        "text",
        "confirm",
        "name",
        "instructions",
        "temperature",
        "max_tokens",
        "provider",
        "address",
        "account_sid",
        "auth_token",
        "template_id",
        "variable",
    ]
) | st.text(max_size=12)
field_values = (
    st.text(max_size=80)
    | st.sampled_from(["yes", "", "/", "//evil.example", "/\\evil", ADMIN_TOKEN])
    | st.text(alphabet=st.characters(codec="latin-1"), max_size=20)
)
forms = st.lists(st.tuples(field_names, field_values), max_size=6)
raw_bodies = st.tuples(
    st.binary(max_size=400),
    st.sampled_from(
        [
            "application/x-www-form-urlencoded",
            "application/x-www-form-urlencoded; charset=latin-1",
            "text/plain",
            "application/json",
            "multipart/form-data; boundary=x",
            "",
        ]
    ),
)


@pytest.fixture
def browser(make_receiver: Callable[..., str], world: World) -> Iterator[Browser]:
    """Signed in to a receiver of its own: the fuzz sends wrong tokens by the hundred,
    which on the shared one would throttle every later test's client address. Hypothesis
    runs every example with this one browser."""
    signed_in = Browser(make_receiver(AUTH_FAILURES_PER_MINUTE="1000000"), world.token)
    yield signed_in
    signed_in.client.close()


@settings(FUZZ_SETTINGS, max_examples=FORM_EXAMPLES)
@given(
    route=st.sampled_from(FORM_ROUTES),
    csrf=st.sampled_from(["valid", "missing"]) | st.text(max_size=40),
    form=forms,
    raw=st.none() | raw_bodies,
)
def test_form_routes_never_answer_5xx(
    browser: Browser,
    world: World,
    fake_twilio: FakeTwilio,
    route: str,
    csrf: str,
    form: list[tuple[str, str]],
    raw: tuple[bytes, str] | None,
) -> None:
    path = route.format(
        session=world.session, turn=world.failed_turn, builder=world.builder, channel=world.channel
    )
    if raw is not None:
        body, content_type = raw
        response = browser.client.post(path, content=body, headers={"Content-Type": content_type})
    else:
        token = browser.csrf if csrf == "valid" else None if csrf == "missing" else csrf
        fields = [*form, ("csrf_token", token)] if token is not None else form
        response = browser.client.post(
            path,
            content=urlencode(fields),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert response.status_code < 500, (path, response.status_code, response.text[:500])
    if route in ("/login", "/logout"):
        browser.sign_in()
