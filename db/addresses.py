"""Channel addresses in the one form channels are stored, verified and routed by."""

from __future__ import annotations

import re

TWILIO_PREFIX = "whatsapp:"
TWILIO_ADDRESS = re.compile(r"^whatsapp:\+[1-9]\d{6,14}$")
META_PHONE_NUMBER_ID = re.compile(r"^\d{5,20}$")
PROVIDERS = ("twilio", "meta")


def channel_address(provider: str, address: str) -> str:
    """`address` as channels store it: without NUL or whitespace (no address holds any),
    and a Twilio number with its `whatsapp:` prefix (`+14155550123` →
    `whatsapp:+14155550123`). The receiver picks the credential that verifies a webhook
    by this form and routes it by the same, so the two can never disagree."""
    address = "".join(address.replace("\x00", "").split())
    if provider == "twilio" and address.startswith("+"):
        return TWILIO_PREFIX + address
    return address


def checked_channel_address(provider: str, address: str) -> str:
    """`address` as a new channel stores it (`channel_address`), or ValueError saying what
    a valid one looks like: what the CLI and the dashboard accept."""
    if provider not in PROVIDERS:
        raise ValueError(f"the provider must be one of {', '.join(PROVIDERS)}")
    address = channel_address(provider, address)
    if provider == "twilio" and not TWILIO_ADDRESS.match(address):
        raise ValueError(f"{address!r} is not a WhatsApp number like whatsapp:+14155238886")
    if provider == "meta" and not META_PHONE_NUMBER_ID.match(address):
        raise ValueError(f"{address!r} is not a Meta phone number id (digits only)")
    return address
