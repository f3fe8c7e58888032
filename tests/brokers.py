"""Brokers of a test's own, on spare ports, so the test can stop and restart them
without touching the shared Redis or RabbitMQ."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Protocol

import amqp
import redis
from amqp.exceptions import AMQPError
from kombu import Connection

from tests.fakes.server import free_port
from tests.waiting import wait_until_ready

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
"""Debian's real scripts (`/usr/sbin/rabbitmq-server` switches to the system node's user
and folders)."""


def delete_rabbitmq_queue(url: str, name: str) -> None:
    """Remove a test's queue and its exchange from a RabbitMQ that outlives the test
    (Celery declares both durable)."""
    with Connection(url, connect_timeout=5) as connection:
        channel = connection.default_channel
        channel.queue_delete(name)
        channel.exchange_delete(name)


class PrivateBroker(Protocol):
    process: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class RedisServer:
    """A Redis on a spare port, keeping nothing on disk."""

    def __init__(self, folder: Path) -> None:
        executable = shutil.which("redis-server")
        assert executable, "this test starts its own Redis: apt-get install redis-server"
        self.executable = executable
        self.port = free_port()
        self.folder = folder
        self.log = folder / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [
                    self.executable,
                    *("--port", str(self.port), "--bind", "127.0.0.1"),
                    *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        wait_until_ready(self._answers, process=self.process, log=self.log, what="Redis")

    def _answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.ConnectionError:
            return False

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=10)


class RabbitMQServer:
    """A RabbitMQ node of its own: its name, ports, Erlang cookie, database, logs and
    configuration all in `folder` (none of the system node's), so a restart keeps its
    durable queues and persistent messages as a production node does."""

    def __init__(self, folder: Path) -> None:
        assert (RABBITMQ_BIN / "rabbitmq-server").exists(), (
            "this test starts its own RabbitMQ: apt-get install rabbitmq-server"
        )
        self.port = free_port()
        self.folder = folder
        self.log = folder / "rabbitmq.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.node = f"wabot-test-{secrets.token_hex(4)}@localhost"
        home = folder / "home"
        home.mkdir()
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16))
        cookie.chmod(0o400)
        (folder / "rabbitmq-env.conf").write_text("")
        (folder / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\n")
        (folder / "enabled_plugins").write_text("[].\n")
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_CONF_ENV_FILE": str(folder / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(folder / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "logs"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [RABBITMQ_BIN / "rabbitmq-server"],
                env=self.env,
                cwd=self.folder,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until_ready(self._answers, process=self.process, log=self.log, what="RabbitMQ")

    def _answers(self) -> bool:
        connection = amqp.Connection(f"127.0.0.1:{self.port}", connect_timeout=0.5)
        try:
            connection.connect()
        except (OSError, AMQPError):
            return False
        connection.close()
        return True

    def ctl(self, *args: str) -> None:
        """`rabbitmqctl ARGS…` on this node."""
        subprocess.run(
            [RABBITMQ_BIN / "rabbitmqctl", "-n", self.node, *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        """A clean shutdown (its script stops the Erlang VM on SIGTERM), else a kill."""
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
