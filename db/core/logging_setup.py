"""Logging shared by every process: one line per event, JSON (`LOG_FORMAT=json`) or text,
carrying the correlation fields of `db.core.log_context`; numbers masked, secrets redacted."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import SecretStr
from pythonjsonlogger.json import JsonFormatter

from db.core.log_context import FIELDS, CorrelationFilter
from db.core.settings import Settings
from db.database_errors import hide_data

HANDLER_NAME = "wabot"
REDACTED = "[redacted]"
# Loggers that print request details (URLs with numbers, bodies, streamed model output)
# at INFO or DEBUG: kept at WARNING even when LOG_LEVEL=DEBUG.
_CHATTY_LOGGERS = (
    "twilio",
    "aiohttp_retry",
    "httpx",
    "httpx2",
    "httpcore",
    "urllib3",
    "openai",
    "openai.agents",
    "aiosqlite",
    "sse_starlette",
)
# Loggers that come with handlers of their own; their records go through ours instead.
_SELF_HANDLED_LOGGERS = ("uvicorn", "uvicorn.error")
_OUR_LOGGERS = ("db.", "worker.", "webhooks.")
# A UUID is left whole (an id to follow, not a number); a run of 7-15 digits not inside
# a longer number or a decimal is masked.
_PHONE = re.compile(
    r"(?P<uuid>[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})|(?<![\d.])\+?\d{7,15}"
)
_JSON_KEYS = {
    "asctime": "time",
    "levelname": "level",
    "name": "logger",
    "exc_info": "exception",
    "stack_info": "stack",
}
_JSON_FIELDS = frozenset(("time", "level", "logger", "message", "exception", "stack", *FIELDS))


def configure_logging(settings: Settings, *filters: Callable[[logging.LogRecord], bool]) -> None:
    """One handler on the root logger for this process's records, ours and its
    libraries'; `filters` adapt the process's own library records to it. Calling it
    again replaces the handler. A host that installed handlers of its own (pytest) keeps
    them, and this does nothing."""
    root = logging.getLogger()
    if any(handler.name != HANDLER_NAME for handler in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.name = HANDLER_NAME
    handler.setFormatter(JsonLines() if settings.log_format == "json" else TextLines())
    handler.addFilter(CorrelationFilter())
    handler.addFilter(Redactor(secret_values(settings)))
    for extra in filters:
        handler.addFilter(extra)
    root.handlers = [handler]
    root.setLevel(settings.log_level)
    logging.captureWarnings(True)  # warnings as records, not bare lines on stderr
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in _SELF_HANDLED_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.setLevel(logging.NOTSET)  # LOG_LEVEL decides
        logger.propagate = True
    # No access log: a line per request is the receiver's hot path, and Meta's
    # subscription handshake carries its verify token in the query string.
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False


def mask_numbers(address: str | None) -> str:
    """`whatsapp:+31612345678` → `whatsapp:+316•••••678`: enough to tell users apart in logs."""
    if not address:
        return "-"
    return _PHONE.sub(_mask, address)


def _mask(match: re.Match[str]) -> str:
    number = match.group()
    if match.group("uuid"):
        return number
    return number[:4] + "•" * (len(number) - 7) + number[-3:]


def secret_values(settings: Settings) -> list[str]:
    """Every secret setting that is set (tokens, keys, passwords)."""
    return [
        value.get_secret_value()
        for value in settings.__dict__.values()
        if isinstance(value, SecretStr) and value.get_secret_value()
    ]


class Redactor(logging.Filter):
    """Defence in depth behind the masking our own log calls do: configured secrets are
    cut out of every line, numbers are masked in libraries' records (Celery's retry and
    failure lines quote exceptions) and in every traceback, and a database error logged
    or quoted says what failed, never the values it refused (`db.database_errors`, which
    our engines already apply where errors are raised)."""

    _tracebacks = logging.Formatter()

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = tuple(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        arguments = record.args.values() if isinstance(record.args, Mapping) else record.args
        for error in [*(arguments or ()), record.exc_info[1] if record.exc_info else None]:
            if isinstance(error, BaseException):
                hide_data(error)
        foreign = not record.name.startswith(_OUR_LOGGERS)
        if foreign or self._secrets:
            record.msg, record.args = self._clean(record.getMessage(), numbers=foreign), ()
        if record.exc_info:
            text = self._tracebacks.formatException(record.exc_info)
            record.exc_text, record.exc_info = self._clean(text, numbers=True), None
        return True

    def _clean(self, text: str, *, numbers: bool) -> str:
        """Secrets first: masking a digit run inside one would leave the rest of it."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _PHONE.sub(_mask, text) if numbers else text


def _utc_time(record: logging.LogRecord) -> str:
    """ISO 8601 in UTC, to the millisecond: `2026-11-30T03:37:00.123Z`."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonLines(JsonFormatter):
    """One JSON object per line: time, level, logger, message, the correlation fields
    present, and the exception when there is one; no other attributes (libraries'
    `extra`, such as Celery's task arguments, stay out)."""

    def __init__(self) -> None:
        super().__init__(
            ["asctime", "levelname", "name", "message", *FIELDS],
            rename_fields=_JSON_KEYS,
            json_default=str,
            json_ensure_ascii=False,
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_time(record)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {
            key: value
            for key, value in log_data.items()
            if value is not None and key in _JSON_FIELDS
        }


class TextLines(logging.Formatter):
    """For a terminal: `time LEVEL logger message [field=value …]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _utc_time(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = " ".join(
            f"{name}={value}" for name in FIELDS if (value := record.__dict__.get(name)) is not None
        )
        return f"{line} [{fields}]" if fields else line
