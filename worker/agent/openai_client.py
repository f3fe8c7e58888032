"""The OpenAI client the workers and the web chat use: openai-python's own, except that
`responses.create` sends its parameters as given instead of first walking them through
the parameter types.

That walk (`openai._utils._transform`) tries every member of the input-item union on
every item of the history, and renames and reformats nothing in a Responses request:
the SDK hands it plain JSON-ready dicts. With a 50-item history it was over half of a
worker's CPU (py-spy). `tests/worker/agent/test_openai_client.py` checks, on realistic
requests, that the walk would have sent the same body, so a new openai release that
starts renaming or reformatting fields fails the suite instead of the API call.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from openai import AsyncOpenAI, AsyncStream
from openai._base_client import make_request_options
from openai._utils import is_given
from openai.resources.responses import AsyncResponses
from openai.types.responses import Response, ResponseStreamEvent

REQUEST_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")


def responses_body(params: dict[str, Any]) -> dict[str, Any]:
    """The JSON body of `responses.create(**params)`: every given parameter, as it is."""
    return {
        name: value
        for name, value in params.items()
        if name not in REQUEST_OPTIONS and is_given(value)
    }


class PlainResponses(AsyncResponses):
    """`responses.create` posting its parameters as they are (see the module docstring);
    streaming, retries, timeouts and errors are openai-python's own."""

    # One signature for openai's three overloads, since the parameters pass through as they
    # are: mypy cannot match it to each overload.
    async def create(self, **params: Any) -> Response | AsyncStream[ResponseStreamEvent]:  # type: ignore[override]
        options = {name: params[name] for name in REQUEST_OPTIONS if name in params}
        stream = params.get("stream") is True
        return await self._post(
            "/responses",
            body=responses_body(params),
            options=make_request_options(**options, security={"bearer_auth": True}),
            cast_to=Response,
            stream=stream,
            stream_cls=AsyncStream[ResponseStreamEvent],
        )


class WorkerOpenAI(AsyncOpenAI):
    """`AsyncOpenAI` whose `responses` is `PlainResponses`."""

    @cached_property
    def responses(self) -> AsyncResponses:
        return PlainResponses(self)
