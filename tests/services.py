"""Where the suite finds its real services (override with TEST_DATABASE_URL, REDIS_URL,
RABBITMQ_URL)."""

from __future__ import annotations

import os

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://127.0.0.1:5432/test")
LIBPQ_DSN = TEST_DATABASE_URL.replace("+psycopg", "")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
