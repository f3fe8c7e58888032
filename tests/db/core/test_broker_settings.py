"""Settings that depend on the broker and the pooler name what is wrong, and only what
applies to the broker in use."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from db.core.settings import Settings

LONG_RUNS = {"RUN_TIMEOUT_SECONDS": "1200", "CONVERSATION_LEASE_SECONDS": "1500"}


def test_redis_s_visibility_timeout_must_outlast_a_run() -> None:
    with pytest.raises(ValidationError, match="CELERY_VISIBILITY_TIMEOUT must be longer"):
        Settings(_env_file=None, CELERY_BROKER_URL="redis://127.0.0.1:6379/0", **LONG_RUNS)


def test_on_rabbitmq_long_runs_need_no_redis_setting() -> None:
    settings = Settings(
        _env_file=None, CELERY_BROKER_URL="amqp://guest:guest@mq:5672//", **LONG_RUNS
    )
    assert settings.broker_is_rabbitmq


def test_an_unknown_pooler_is_named() -> None:
    with pytest.raises(ValidationError, match="DATABASE_POOLER"):
        Settings(_env_file=None, DATABASE_POOLER="statement")
