"""What `make demo` checks before it starts anything, so a demo that cannot finish says
why in one line at once instead of "no reply within 60s" a minute later."""

from __future__ import annotations

import socket

import httpx

from db.core.settings import Settings
from worker.demo.bakery import DemoFailure

OPENAI_API = "https://api.openai.com/v1"
PROBE_SECONDS = 5.0


def check_port_free(port: int, what: str) -> None:
    """Refuse when `port` is taken on loopback (`what`: how to pick another) rather than
    leave the receiver's bind error in its log."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise DemoFailure(f"port {port} is in use: stop what serves it or {what}") from None


def check_model_api(settings: Settings) -> None:
    """With OPENAI_API_KEY set, the model API must answer (its model list, which costs
    nothing) and take the key; without it the offline model needs nothing."""
    if settings.openai_api_key is None:
        return
    base_url = settings.openai_base_url or OPENAI_API
    key = settings.openai_api_key.get_secret_value()
    try:
        response = httpx.get(
            f"{base_url}/models",
            headers={"Authorization": f"Bearer {key}"},
            timeout=PROBE_SECONDS,
        )
    except httpx.TransportError as error:
        reason = str(error) or type(error).__name__
        raise DemoFailure(f"model API unreachable: {base_url} ({reason})") from None
    if response.status_code in (401, 403):
        raise DemoFailure(
            f"model API refused OPENAI_API_KEY: {base_url} answered {response.status_code}"
        )
