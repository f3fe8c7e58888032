"""The processes `make demo` runs: a receiver and a worker, each logging to a file,
watched until the demo is done (or until Ctrl-C with `--serve`). One that stops is
named on screen with the last error its log holds, not left for the user to find."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click
import httpx

from worker.demo.bakery import DemoFailure

ERROR_LEVELS = frozenset(("ERROR", "CRITICAL"))
START_SECONDS = 90


@dataclass(frozen=True)
class DemoProcess:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        """Raise, with its last error line, if it has stopped."""
        code = self.process.poll()
        if code is None:
            return
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        raise DemoFailure(f"the {self.name} stopped ({how}): {last_error(self.log)}")


def start(name: str, args: list[str], env: dict[str, str], log: Path) -> DemoProcess:
    click.echo(f"starting the {name} (log: {log})")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", *args],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return DemoProcess(name, process, log)


def wait_until_serving(base_url: str, receiver: DemoProcess) -> None:
    """Until its health check answers; a receiver that stopped is named at once, so the
    deadline only bounds a slow start (a loaded machine)."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        receiver.check()
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise DemoFailure(f"the receiver did not start within {START_SECONDS}s")


def serve_until_interrupted(processes: list[DemoProcess]) -> None:
    """Block until Ctrl-C (SIGINT), or until the receiver or the worker stops by itself."""
    try:
        while True:
            for each in processes:
                each.check()
            time.sleep(0.5)
    except KeyboardInterrupt:
        click.echo("\nstopping")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def last_error(log: Path) -> str:
    """The last error a process logged, on one line: the message of its last ERROR
    record (with its exception's last line) in a JSON log, else its last line (a crash
    before logging was set up prints a plain traceback)."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as error:
        return f"its log {log} cannot be read ({error.strerror})"
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ERROR_LEVELS:
            message = str(record.get("message", ""))
            exception = str(record.get("exception") or "").strip().splitlines()
            return f"{message}: {exception[-1]}" if exception else message
    plain = [line for line in lines if not line.lstrip().startswith("{")]
    errors = [line for line in plain if ERROR_LEVELS & set(line.split()[1:3])]
    last = (errors or plain)[-1:]
    return " ".join(last[0].split()) if last else f"no error in its log {log}"
