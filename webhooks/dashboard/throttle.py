"""Guessing tokens is throttled: once a client address has sent `AUTH_FAILURES_PER_MINUTE`
wrong tokens within a minute (to `POST /login` or as `Authorization: Bearer`), it gets
429 with `Retry-After` for any token, right or wrong, until its oldest failure is a
minute old. Browsers already signed in (by cookie) are never throttled.

The count lives in this process's memory (`limits`' moving window): each dashboard
process counts on its own, and a restart forgets.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from prometheus_client import Counter
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

AUTH_REFUSALS = Counter(
    "wabot_dashboard_auth_refusals",
    "Dashboard and API requests refused for their token, by reason: `wrong_token` "
    "(nobody's: 401) or `throttled` (429: too many wrong tokens from the address).",
    ["reason"],
)


class WrongTokens:
    """Wrong tokens per client address over the last minute."""

    def __init__(self, per_minute: int, *, trust_proxy_headers: bool) -> None:
        self.limit = RateLimitItemPerMinute(per_minute)
        self.window = MovingWindowRateLimiter(MemoryStorage())
        self.trust_proxy_headers = trust_proxy_headers

    def check(self, request: HTTPConnection) -> None:
        """Refuse (429) a client that has sent too many wrong tokens, before its token is
        even looked at."""
        address = self.client_address(request)
        if self.window.test(self.limit, address):
            return
        AUTH_REFUSALS.labels("throttled").inc()
        reset_at, _ = self.window.get_window_stats(self.limit, address)
        wait = max(1, math.ceil(reset_at - time.time()))
        raise HTTPException(
            429,
            f"too many wrong tokens from this address; try again in {wait} s",
            {"Retry-After": str(wait)},
        )

    def record(self, request: HTTPConnection) -> None:
        """The client sent a token that is nobody's."""
        AUTH_REFUSALS.labels("wrong_token").inc()
        self.window.hit(self.limit, self.client_address(request))

    def client_address(self, request: HTTPConnection) -> str:
        """The connection's peer (as uvicorn reports it); with `TRUST_PROXY_HEADERS`, the
        address our proxy appended last to `X-Forwarded-For` (earlier entries are the
        client's to invent)."""
        if self.trust_proxy_headers:
            forwarded = request.headers.get("x-forwarded-for", "").rsplit(",", 1)[-1].strip()
            if forwarded:
                return forwarded
        return request.client.host if request.client else "unknown"
