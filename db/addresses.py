"""Channel addresses in the one form channels are stored, verified and routed by."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import ValidationResult

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


def checked_channel_address(provider: str, address: str, *, new: bool = True) -> str:
    """`address` as a channel stores it (`channel_address`), or ValueError saying what a
    valid one looks like: what the CLI and the dashboard accept. A `new` Twilio number
    must also have a length its country's numbers have (`whatsapp_number_problem`); one
    routed before that was checked can still be updated and removed."""
    if provider not in PROVIDERS:
        raise ValueError(f"the provider must be one of {', '.join(PROVIDERS)}")
    address = channel_address(provider, address)
    if provider == "twilio" and not TWILIO_ADDRESS.match(address):
        raise ValueError(f"{address!r} is not a WhatsApp number like whatsapp:+14155238886")
    problem = whatsapp_number_problem(address) if provider == "twilio" and new else None
    if problem is not None:
        raise ValueError(f"{address!r} {problem}")
    if provider == "meta" and not META_PHONE_NUMBER_ID.match(address):
        raise ValueError(f"{address!r} is not a Meta phone number id (digits only)")
    return address


def whatsapp_number_problem(address: str) -> str | None:
    """Why a Twilio address (`whatsapp:+…`) is no number a country could have, or None.

    The lengths are each country's own, from libphonenumber's metadata: a +1 number has
    exactly ten digits after the 1, a +49 one from six to fifteen, so `whatsapp:+1415555`
    is refused though it is within E.164's fifteen. Which ranges are assigned is not
    checked: a number allocated after this library's release is never refused."""
    digits = address.removeprefix(TWILIO_PREFIX).removeprefix("+")
    if not address.startswith(TWILIO_PREFIX + "+") or not digits.isdigit():
        return "is not a WhatsApp number like whatsapp:+14155238886"
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return "does not start with a country calling code"
    result = phonenumbers.is_possible_number_with_reason(number)
    if result == ValidationResult.IS_POSSIBLE:
        return None
    country = f"+{number.country_code}"
    reasons = {
        ValidationResult.INVALID_COUNTRY_CODE: "does not start with a country calling code",
        ValidationResult.TOO_SHORT: f"is too short for a {country} number",
        ValidationResult.IS_POSSIBLE_LOCAL_ONLY: f"is too short for a {country} number",
        ValidationResult.TOO_LONG: f"is too long for a {country} number",
    }
    return reasons.get(result, f"has a length no {country} number has")
