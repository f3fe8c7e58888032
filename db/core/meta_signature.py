"""Meta's webhook signature: `X-Hub-Signature-256` is `sha256=` and the hex HMAC-SHA256
of the raw body under the app secret. The receiver checks it; the demo and the tests
sign with the same function, so the algorithm is written once."""

from __future__ import annotations

import hashlib
import hmac


def meta_signature(body: bytes, app_secret: str) -> str:
    """The `X-Hub-Signature-256` header Meta sends with `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def signed_by(body: bytes, header: str, app_secret: str) -> bool:
    """True when `header` is `body`'s signature under `app_secret` (constant time)."""
    return hmac.compare_digest(header.encode(), meta_signature(body, app_secret).encode())
