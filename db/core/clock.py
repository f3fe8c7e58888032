"""Timestamps as aware UTC, whichever database they came from."""

from __future__ import annotations

from datetime import UTC, datetime


def as_utc(moment: datetime) -> datetime:
    """Postgres returns aware timestamps; SQLite's are naive UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
