"""The processes `make demo` runs: a receiver and a worker, each logging to a file,
watched until the demo is done (or until Ctrl-C with `--serve`)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx

from worker.demo.bakery import DemoFailure


def start(name: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    click.echo(f"starting the {name} (log: {log})")
    with log.open("wb") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def wait_until_serving(base_url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise DemoFailure("the receiver did not start within 30s")


def serve_until_interrupted(processes: list[subprocess.Popen[bytes]]) -> None:
    """Block until Ctrl-C (SIGINT), or until the receiver or the worker stops by itself."""
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\nstopping")
        return
    raise DemoFailure("the receiver or the worker stopped while serving")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
