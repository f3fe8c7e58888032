"""Which conversation leases this process may act under without asking the database."""

from __future__ import annotations

import time
import uuid


class FreshLeases:
    """Leases taken or renewed by this process less than half their time-to-live ago.

    Another worker takes a lease only once it has expired, so a fresh one is still ours:
    acting under it needs no renewal round trip yet (the session's writes stay fenced by
    the token in the same statement). Half the time-to-live leaves the other half as the
    margin for clock drift between hosts and for a stalled process.
    """

    def __init__(self, ttl_seconds: float) -> None:
        self._fresh_for = ttl_seconds / 2
        self._fresh_until: dict[uuid.UUID, float] = {}

    def held(self, token: uuid.UUID, *, since: float | None = None) -> None:
        """The database gave us (or extended) the lease `token` at `since` (a
        `time.monotonic()` reading; now when omitted)."""
        start = time.monotonic() if since is None else since
        self._fresh_until[token] = start + self._fresh_for

    def fresh(self, token: uuid.UUID) -> bool:
        return self.seconds_fresh(token) > 0

    def seconds_fresh(self, token: uuid.UUID) -> float:
        """How long the lease `token` stays fresh (0 when it is not)."""
        return max(0.0, self._fresh_until.get(token, 0.0) - time.monotonic())

    def forget(self, token: uuid.UUID) -> None:
        self._fresh_until.pop(token, None)
