"""Channel addresses in the one form channels are stored, verified and routed by."""

from __future__ import annotations

import phonenumbers
from phonenumbers import ValidationResult

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
