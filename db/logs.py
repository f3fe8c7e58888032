"""Logging shared by every process: one format, quiet third-party loggers, masked numbers."""

from __future__ import annotations

import logging
import re

# Loggers that print request details (URLs with numbers, bodies) at INFO.
_CHATTY_LOGGERS = ("twilio", "httpx", "httpx2", "httpcore", "openai", "openai.agents", "aiosqlite")
_PHONE = re.compile(r"\+?\d{7,15}")


def configure_logging(level: str = "INFO") -> None:
    """Root handler (unless the host, e.g. pytest, installed one) and quiet libraries."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def mask_numbers(address: str | None) -> str:
    """`whatsapp:+31612345678` → `whatsapp:+316•••••678`: enough to tell users apart in logs."""
    if not address:
        return "-"
    return _PHONE.sub(
        lambda m: m.group()[:4] + "•" * (len(m.group()) - 7) + m.group()[-3:], address
    )
