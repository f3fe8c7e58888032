"""The ceiling for row 2: a Starlette route that does nothing, on the same uvicorn."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def accept(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("ok")


app = Starlette(
    routes=[
        Route("/webhooks/twilio", accept, methods=["POST"]),
        Route("/webhooks/meta", accept, methods=["POST"]),
    ]
)
