"""How a turn can fail: worth another attempt, or over for good."""

from __future__ import annotations


class TransientTurnError(Exception):
    """Worth another attempt of the same turn."""


class PermanentTurnError(Exception):
    """The turn cannot succeed; it ends failed with this reason."""


class UndeliverableError(PermanentTurnError):
    """The provider refused the reply itself, so no fallback can reach the user either."""
