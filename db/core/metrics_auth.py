"""Who may read metrics: the holder of `METRICS_TOKEN`, on the receiver, the dashboard
and each worker."""

from __future__ import annotations

import hmac

from pydantic import SecretStr


def metrics_authorized(authorization: str | None, token: SecretStr) -> bool:
    """True for `Authorization: Bearer <token>` with the configured token."""
    scheme, _, offered = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        offered.strip().encode(), token.get_secret_value().encode()
    )
