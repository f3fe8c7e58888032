"""How a turn can fail: worth another attempt, or over for good."""

from __future__ import annotations


class TransientTurnError(Exception):
    """Worth another attempt of the same turn, not before `retry_after` seconds if the
    model or provider said so."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentTurnError(Exception):
    """The turn cannot succeed; it ends failed with this reason."""


class UndeliverableError(PermanentTurnError):
    """The provider refused the reply itself, so no fallback can reach the user either."""
