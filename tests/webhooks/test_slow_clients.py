"""Clients too slow to send their request are cut off, however the receiver is started
(`wabot serve`, the Procfile's `web`, the Docker image's uvicorn) and where the dashboard
runs apart (the Procfile's `dashboard`), while everyone else is still served; headers
have a size cap."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT
from tests.fakes.server import free_port

BYTE_EVERY_SECONDS = 2.0
CLOSED_WITHIN_SECONDS = 30.0


def procfile_command(process: str) -> str:
    """The Procfile's command for `process` (`web`, `dashboard`, …)."""
    [line] = [
        line
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.startswith(f"{process}:")
    ]
    return line.removeprefix(f"{process}:").strip()


def _docker_image() -> tuple[dict[str, str], list[str]]:
    """The Dockerfile's ENV variables and its CMD."""
    env, command = {}, []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line.removeprefix("ENV ")):
                name, _, value = pair.partition("=")
                env[name] = value
        elif line.startswith("CMD "):
            command = json.loads(line.removeprefix("CMD "))
    return env, command


@contextmanager
def started(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """A receiver process, once `/healthz` answers; yields its base URL."""
    with log.open("ab") as output:
        process = subprocess.Popen(  # a group of its own: `sh -c` starts uvicorn as a child
            command,
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{command} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def receivers(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The receiver started the three documented ways, and the dashboard as the Procfile
    runs it apart, with the default settings."""
    logs = tmp_path_factory.mktemp("slow-clients")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**service_env, "PATH": path, "HOME": os.environ.get("HOME", "/tmp")}
    image_env, image_command = _docker_image()
    ports = {
        name: free_port()
        for name in ("wabot serve", "Procfile", "Dockerfile", "Procfile dashboard")
    }
    commands = {
        "wabot serve": (
            [sys.executable, "-m", "worker.cli", "serve", "--port", str(ports["wabot serve"])],
            env,
        ),
        "Procfile": (
            ["sh", "-c", procfile_command("web")],
            {**env, "PORT": str(ports["Procfile"])},
        ),
        "Dockerfile": (
            [str(ports["Dockerfile"]) if part == "8000" else part for part in image_command],
            {**env, **image_env},
        ),
        "Procfile dashboard": (
            ["sh", "-c", procfile_command("dashboard")],
            {**env, "PORT": str(ports["Procfile dashboard"])},
        ),
    }
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(started(command, env, ports[name], logs / f"{index}.log"))
            for index, (name, (command, env)) in enumerate(commands.items())
        }


def dribble(url: str, head: bytes, trickle: bytes) -> float:
    """Send `head`, then `trickle` a byte every 2 s until the server closes the
    connection; returns how many seconds that took (fails once it held on for 30 s)."""
    host, port = url.removeprefix("http://").split(":")
    began = time.monotonic()
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(head)
        connection.settimeout(BYTE_EVERY_SECONDS)
        for byte in trickle:
            try:
                connection.sendall(bytes([byte]))
                if connection.recv(1024) == b"":
                    return time.monotonic() - began
            except TimeoutError:
                pass  # still open: the next byte
            except ConnectionError:
                return time.monotonic() - began
            assert time.monotonic() - began < CLOSED_WITHIN_SECONDS, "the connection was held"
    raise AssertionError("the whole request went out before the server closed the connection")


def silent(url: str) -> float:
    """Connect and send nothing; returns when the server closed the connection."""
    host, port = url.removeprefix("http://").split(":")
    began = time.monotonic()
    with socket.create_connection((host, int(port))) as connection:
        connection.settimeout(CLOSED_WITHIN_SECONDS)
        assert connection.recv(1024) == b"", "the server answered a request never sent"
    return time.monotonic() - began


def test_slow_and_silent_clients_are_cut_off_while_others_are_served(
    receivers: dict[str, str],
) -> None:
    slow_headers = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"X-Slow: " + b"a" * 100)
    slow_body = (
        b"POST /webhooks/twilio HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n",
        b"a" * 100,
    )
    attacks = [(url, *parts) for url in receivers.values() for parts in (slow_headers, slow_body)]
    with ThreadPoolExecutor(max_workers=len(attacks) + len(receivers)) as pool:
        held = [pool.submit(dribble, *attack) for attack in attacks]
        held += [pool.submit(silent, url) for url in receivers.values()]
        while not all(attack.done() for attack in held):
            for name, url in receivers.items():
                assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200, name
            time.sleep(0.5)
        closed_after = [attack.result() for attack in held]
    assert all(seconds < CLOSED_WITHIN_SECONDS for seconds in closed_after)


def test_headers_over_64_kib_get_431(receivers: dict[str, str]) -> None:
    host, port = receivers["wabot serve"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(7):
            connection.sendall(b"X-Filler: " + b"a" * 10_000 + b"\r\n")
        answer = connection.recv(1024)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert answer.endswith(b"request headers exceed 65536 bytes")
