"""The service's one typed configuration, read from the environment and `.env`.

It lives in `db`, the bottom layer, so the receiver, the workers, the CLI and the
Alembic environment all load the same settings without importing upward.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from db.core.credentials import CredentialsCipher, fernet_keys
from db.engine import Pooler

MEGABYTE = 1024 * 1024


class Settings(BaseSettings):
    """Every knob of wabot; unset values fall back to the embedded demo setup."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    data_dir: Path = Field(Path(".wabot"), alias="WABOT_DATA_DIR")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    database_pool_size: int = Field(10, alias="DATABASE_POOL_SIZE", ge=1)
    database_pooler: Pooler = Field("none", alias="DATABASE_POOLER")
    session_connections: int = Field(4, alias="SESSION_CONNECTIONS", ge=1)
    history_window: int = Field(50, alias="HISTORY_WINDOW", ge=0)
    celery_broker_url: str | None = Field(None, alias="CELERY_BROKER_URL")
    celery_queue: str = Field("wabot", alias="CELERY_QUEUE")
    celery_visibility_timeout: int = Field(900, alias="CELERY_VISIBILITY_TIMEOUT", ge=5)
    worker_concurrency: int = Field(32, alias="WORKER_CONCURRENCY", ge=1)
    worker_shutdown_grace_seconds: float = Field(90.0, alias="WORKER_SHUTDOWN_GRACE_SECONDS", ge=0)

    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")
    openai_timeout_seconds: float = Field(30.0, alias="OPENAI_TIMEOUT_SECONDS", gt=0)
    openai_max_retries: int = Field(2, alias="OPENAI_MAX_RETRIES", ge=0)
    default_model: str = Field("gpt-4.1-mini", alias="DEFAULT_MODEL")
    agents_tracing: bool = Field(False, alias="AGENTS_TRACING")

    request_read_timeout_seconds: float = Field(10.0, alias="REQUEST_READ_TIMEOUT_SECONDS", gt=0)

    public_base_url: str | None = Field(None, alias="PUBLIC_BASE_URL")
    trust_proxy_headers: bool = Field(False, alias="TRUST_PROXY_HEADERS")

    twilio_account_sid: str | None = Field(None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, alias="TWILIO_AUTH_TOKEN")
    twilio_api_base_url: str | None = Field(None, alias="TWILIO_API_BASE_URL")
    twilio_timeout_seconds: float = Field(10.0, alias="TWILIO_TIMEOUT_SECONDS", gt=0)

    meta_app_secret: SecretStr | None = Field(None, alias="META_APP_SECRET")
    meta_verify_token: SecretStr | None = Field(None, alias="META_VERIFY_TOKEN")
    meta_access_token: SecretStr | None = Field(None, alias="META_ACCESS_TOKEN")
    meta_api_base_url: str = Field("https://graph.facebook.com", alias="META_API_BASE_URL")
    meta_api_version: str = Field("v24.0", alias="META_API_VERSION", pattern=r"^v\d+\.\d+$")
    meta_timeout_seconds: float = Field(10.0, alias="META_TIMEOUT_SECONDS", gt=0)
    meta_status_wait_seconds: float = Field(10.0, alias="META_STATUS_WAIT_SECONDS", ge=0)
    meta_business_account_id: str | None = Field(
        None, alias="META_BUSINESS_ACCOUNT_ID", pattern=r"^\d{5,20}$"
    )

    media_retention_days: int = Field(30, alias="MEDIA_RETENTION_DAYS", ge=0)
    media_timeout_seconds: float = Field(30.0, alias="MEDIA_TIMEOUT_SECONDS", gt=0)
    media_max_audio_bytes: int = Field(16 * MEGABYTE, alias="MEDIA_MAX_AUDIO_BYTES", gt=0)
    media_max_video_bytes: int = Field(16 * MEGABYTE, alias="MEDIA_MAX_VIDEO_BYTES", gt=0)
    media_max_image_bytes: int = Field(5 * MEGABYTE, alias="MEDIA_MAX_IMAGE_BYTES", gt=0)
    media_max_document_bytes: int = Field(25 * MEGABYTE, alias="MEDIA_MAX_DOCUMENT_BYTES", gt=0)
    media_document_characters: int = Field(20_000, alias="MEDIA_DOCUMENT_CHARACTERS", gt=0)
    twilio_media_hosts: str = Field(
        "api.twilio.com,media.twiliocdn.com,*.twiliocdn.com,mms.twiliocdn.com",
        alias="TWILIO_MEDIA_HOSTS",
    )
    meta_media_hosts: str = Field("lookaside.fbsbx.com", alias="META_MEDIA_HOSTS")
    transcribe_model: str = Field("gpt-4o-mini-transcribe", alias="TRANSCRIBE_MODEL")
    transcribe_base_url: str | None = Field(None, alias="TRANSCRIBE_BASE_URL")
    tts_model: str = Field("gpt-4o-mini-tts", alias="TTS_MODEL")
    tts_voice: str = Field("alloy", alias="TTS_VOICE")
    tts_base_url: str | None = Field(None, alias="TTS_BASE_URL")
    media_link_secret: SecretStr | None = Field(None, alias="MEDIA_LINK_SECRET", min_length=16)
    media_link_seconds: int = Field(600, alias="MEDIA_LINK_SECONDS", gt=0)

    credentials_key: SecretStr | None = Field(None, alias="CREDENTIALS_KEY")

    typing_indicator: bool = Field(True, alias="TYPING_INDICATOR")
    twilio_typing_indicator: bool = Field(False, alias="TWILIO_TYPING_INDICATOR")
    typing_refresh_seconds: float = Field(20.0, alias="TYPING_REFRESH_SECONDS", gt=0)

    run_timeout_seconds: float = Field(60.0, alias="RUN_TIMEOUT_SECONDS", gt=0)
    conversation_lease_seconds: float = Field(120.0, alias="CONVERSATION_LEASE_SECONDS", gt=0)
    turn_max_attempts: int = Field(5, alias="TURN_MAX_ATTEMPTS", ge=1)
    retry_backoff_seconds: float = Field(2.0, alias="RETRY_BACKOFF_SECONDS", gt=0)

    coalesce_window_seconds: float = Field(1.0, alias="COALESCE_WINDOW_SECONDS", ge=0)
    sender_turns_per_minute: int = Field(20, alias="SENDER_TURNS_PER_MINUTE", ge=0)

    sweep_interval_seconds: float = Field(30.0, alias="SWEEP_INTERVAL_SECONDS", gt=0)
    sweep_stale_seconds: float = Field(60.0, alias="SWEEP_STALE_SECONDS", gt=0)

    admin_token: SecretStr | None = Field(None, alias="ADMIN_TOKEN", min_length=16)
    session_secret: SecretStr | None = Field(None, alias="SESSION_SECRET", min_length=16)
    session_max_age_seconds: int = Field(8 * 3600, alias="SESSION_MAX_AGE_SECONDS", gt=0)
    auth_failures_per_minute: int = Field(10, alias="AUTH_FAILURES_PER_MINUTE", ge=1)

    metrics_token: SecretStr | None = Field(None, alias="METRICS_TOKEN", min_length=16)
    worker_metrics_port: int | None = Field(None, alias="WORKER_METRICS_PORT", ge=1, le=65535)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", alias="LOG_LEVEL"
    )
    log_format: Literal["json", "text"] = Field("json", alias="LOG_FORMAT")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str | None) -> str | None:
        """Accept the URLs platforms hand out and point them at our async drivers."""
        if url is None:
            return None
        for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url.removeprefix(prefix)
        if url.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + url.removeprefix("sqlite:///")
        if url.startswith(("postgresql+psycopg://", "sqlite+aiosqlite://")):
            return url
        raise ValueError(
            "DATABASE_URL must be a postgres:// / postgresql:// or sqlite:/// URL, "
            f"got scheme {url.split(':', 1)[0]!r}"
        )

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_in_any_case(cls, log_format: object) -> object:
        return log_format.lower() if isinstance(log_format, str) else log_format

    @field_validator(
        "public_base_url",
        "openai_base_url",
        "twilio_api_base_url",
        "meta_api_base_url",
        "transcribe_base_url",
        "tts_base_url",
    )
    @classmethod
    def _no_trailing_slash(cls, url: str | None) -> str | None:
        return url.rstrip("/") if url else url

    @field_validator("credentials_key")
    @classmethod
    def _fernet_keys(cls, keys: SecretStr | None) -> SecretStr | None:
        """Comma-separated Fernet keys; a malformed one fails here, not at the first webhook."""
        if keys is not None:
            fernet_keys(keys.get_secret_value())
        return keys

    @model_validator(mode="after")
    def _timeouts_outlive_runs(self) -> Settings:
        """A lease or a Redis visibility timeout shorter than a run would hand a live
        conversation (or its task) to a second worker (on RabbitMQ, the broker's own
        consumer_timeout plays that part: see README, "Which broker")."""
        timeouts = [("CONVERSATION_LEASE_SECONDS", self.conversation_lease_seconds)]
        if not self.broker_is_rabbitmq:
            timeouts.append(("CELERY_VISIBILITY_TIMEOUT", self.celery_visibility_timeout))
        for name, seconds in timeouts:
            if seconds <= self.run_timeout_seconds:
                raise ValueError(
                    f"{name} must be longer than RUN_TIMEOUT_SECONDS "
                    f"({seconds:g} <= {self.run_timeout_seconds:g})"
                )
        return self

    @model_validator(mode="after")
    def _metrics_are_protected(self) -> Settings:
        """A worker's metrics port is never served without the token."""
        if self.worker_metrics_port is not None and self.metrics_token is None:
            raise ValueError("WORKER_METRICS_PORT needs METRICS_TOKEN (metrics are never open)")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The configured database, or the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'wabot.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        """The configured broker, or the embedded file-system broker."""
        return self.celery_broker_url or "filesystem://localhost//"

    @property
    def broker_is_rabbitmq(self) -> bool:
        """An AMQP broker (RabbitMQ) rather than Redis or the embedded one."""
        scheme = (self.celery_broker_url or "").split("://", 1)[0]
        return scheme in {"amqp", "amqps", "pyamqp"}

    @property
    def broker_folder(self) -> Path:
        """Where the embedded broker keeps its messages."""
        return (self.data_dir / "broker").resolve()

    @property
    def cookie_secure(self) -> bool:
        """Browsers send the sign-in cookie over HTTPS only when the service is public on HTTPS."""
        return bool(self.public_base_url and self.public_base_url.startswith("https://"))

    @property
    def credentials_cipher(self) -> CredentialsCipher | None:
        """What opens channels' own credentials; None without CREDENTIALS_KEY."""
        if self.credentials_key is None:
            return None
        return CredentialsCipher(self.credentials_key.get_secret_value())

    @property
    def twilio_can_send(self) -> bool:
        """Sending needs both the account SID and the auth token."""
        return bool(self.twilio_account_sid and self.twilio_auth_token)


class ConfigurationError(ValueError):
    """A setting is missing or wrong; the message names the variable, one line each."""


IN_WORDS = {
    "too_short": "must be at least {min_length} characters",
    "too_long": "must be at most {max_length} characters",
    "greater_than": "must be greater than {gt:g}",
    "greater_than_equal": "must be {ge:g} or more",
    "less_than": "must be less than {lt:g}",
    "less_than_equal": "must be {le:g} or less",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "bool_parsing": "must be true or false",
    "literal_error": "must be one of {expected}",
    "string_pattern_mismatch": "must look like {example} (the pattern {pattern})",
}
"""What pydantic's error types mean for an environment variable: pydantic speaks of a
secret's "items" and of "Input should be …", a variable has characters and values."""


def in_words(error: ValidationError) -> list[str]:
    """One line per wrong setting, naming its variable: `ADMIN_TOKEN must be at least 16
    characters`."""
    aliases = {field.alias: field for field in Settings.model_fields.values()}
    lines = []
    for problem in error.errors():
        name = ".".join(str(part) for part in problem["loc"])
        context = dict(problem.get("ctx") or {})
        if problem["type"] == "value_error":
            reason = str(context.get("error", problem["msg"]))
            if name and not reason.startswith(name):
                reason = f"{name} {reason}" if reason.startswith("must") else f"{name}: {reason}"
            lines.append(reason)
            continue
        field = aliases.get(name)
        context["example"] = field.default if field is not None else "its default"
        template = IN_WORDS.get(problem["type"])
        if template is None:
            lines.append(f"{name}: {problem['msg']}")
        else:
            lines.append(f"{name} {template.format(**context)}")
    return lines


@lru_cache
def get_settings() -> Settings:
    """Load settings once per process; a bad value fails here, naming its variable."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigurationError("\n".join(in_words(error))) from None
