"""Channel addresses in the one form channels are stored, verified and routed by."""

from __future__ import annotations

TWILIO_PREFIX = "whatsapp:"


def channel_address(provider: str, address: str) -> str:
    """`address` as channels store it: without NUL or whitespace (no address holds any),
    and a Twilio number with its `whatsapp:` prefix (`+14155550123` →
    `whatsapp:+14155550123`). The receiver picks the credential that verifies a webhook
    by this form and routes it by the same, so the two can never disagree."""
    address = "".join(address.replace("\x00", "").split())
    if provider == "twilio" and address.startswith("+"):
        return TWILIO_PREFIX + address
    return address
