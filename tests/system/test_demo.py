"""`make demo` works on embedded defaults alone: no Postgres, Redis, OpenAI or Twilio;
it ends with the dashboard URL and a token, and `--serve` keeps that dashboard up."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import Wabot
from tests.factories import CREDENTIALS_KEY

pytestmark = pytest.mark.slow
Completed = subprocess.CompletedProcess[str]


def test_the_demo_converses_prints_the_transcript_and_serves_the_dashboard(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "demo", "--serve"],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    watchdog = threading.Timer(180, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Serving the dashboard") or "demo failed" in line:
                break
        out = "".join(lines)
        assert "Serving the dashboard" in out, out
        conversation = re.search(r"^conversation: (\S+)$", out, re.M)
        token = re.search(r"^token: +(\S+)$", out, re.M)
        metrics = re.search(r'^curl -H "Authorization: Bearer (\S+)" (\S+)$', out, re.M)
        worker_metrics = re.search(r"^worker: +(\S+)$", out, re.M)
        admin = re.search(r"^admin: +(\S+)$", out, re.M)
        assert conversation and token and metrics and worker_metrics and admin
        as_builder = {"Authorization": f"Bearer {token.group(1)}"}
        page = httpx.get(conversation.group(1), headers=as_builder, timeout=15)
        anonymous = httpx.get(conversation.group(1), timeout=15)
        base_url = conversation.group(1).split("/sessions/")[0]
        builders = httpx.get(
            f"{base_url}/builders",
            headers={"Authorization": f"Bearer {admin.group(1)}"},
            timeout=15,
        )
        as_prometheus = {"Authorization": f"Bearer {metrics.group(1)}"}
        receiver_metrics = httpx.get(metrics.group(2), headers=as_prometheus, timeout=15)
        worker_scrape = httpx.get(worker_metrics.group(1), headers=as_prometheus, timeout=15)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, out + rest
    assert "stopping" in rest

    assert "model:    offline" in out and "broker:   filesystem" in out
    twilio_leg, meta_leg = out.split("── Meta (WhatsApp Cloud API) leg ──")
    assert "agent < Nice to meet you, Ada!" in twilio_leg
    assert "agent < Your name is Ada." in twilio_leg
    # The bakery's opening hours are its document: the agent searched them.
    assert "agent < From hours.md: On Sunday we open at 9 am and close at 1 pm.\n" in twilio_leg
    # Asked for times, the agent offers three (numbered: the demo's console channel shows
    # them as Twilio does), and Ada's "2" reaches it as the time she picked.
    assert "agent < Which time suits you?\n\n1. Today 15:00\n2. Tomorrow 10:00\n" in twilio_leg
    assert "agent < Tomorrow 10:00 it is. See you then!" in twilio_leg
    # The files the demo's users send, fetched by the worker from the demo's own media
    # server: each answer says what the offline model was handed.
    assert (
        "agent < I received your voice note 0:02: (offline transcriber: audio/ogg, 5 KB;"
        " set OPENAI_API_KEY to hear what it says)\n"
    ) in twilio_leg
    assert (
        'agent < I received your photo (image/jpeg, 1,904 bytes) with the caption "Do you have'
        ' this cake?".'
    ) in twilio_leg
    assert (
        'agent < I received your document (application/pdf, 731 bytes). It reads: "Order form /'
        ' Sourdough loaf x 2 / Pickup on Saturday at 10:00 / My order"\n'
    ) in twilio_leg
    transcript = twilio_leg.split("read back from session_items:")[1]
    assert "reply_with_options(" in transcript and "2 (chose: Tomorrow 10:00)" in transcript
    assert "current_time(" in transcript and "assistant Your name is Ada." in transcript
    assert "search_documents(" in transcript
    # The metrics moved while it ran: nine Twilio messages, then five Meta ones.
    moved = re.findall(
        r"^metrics: webhooks accepted (\d+) · inbox waiting 0 · turns replied (\d+)"
        r" · replies sent (\d+) · model tokens (\d+) in / (\d+) out$",
        out,
        re.M,
    )
    assert [row[:3] for row in moved] == [("9", "9", "9"), ("14", "14", "14")], out
    assert 0 < int(moved[0][3]) < int(moved[1][3])
    assert "subscription handshake) → 200 42" in meta_leg
    assert "(POST /webhooks/meta, signed → 200)" in meta_leg
    # What only Meta carries: a catalog order and a Flow reply, read as a person would.
    assert (
        "agent < I received your order from catalog demo-bakery: 2 × product sourdough at 4.5"
        ' EUR; 4 × product croissant at 1.8 EUR; total 16.2 EUR. Your note: "Pickup on'
        ' Saturday, please".\n'
    ) in meta_leg
    assert "agent < I received your form: date: 2026-12-24, time: 10:00, people: 4.\n" in meta_leg
    assert "flow_token" not in meta_leg.split("read back from session_items:")[1]
    meta_transcript = meta_leg.split("read back from session_items:")[1]
    assert "user      [location: 52.3731, 4.8922, Dam]" in meta_transcript
    assert "assistant Your name is Grace." in meta_transcript
    assert (tmp_path / ".wabot" / "wabot.db").exists()
    assert {path.name for path in tmp_path.iterdir()} == {".wabot"}  # nothing left beside it
    made = {path.name for path in (tmp_path / ".wabot").iterdir()}
    assert {"broker", "demo-admin-token", "demo-tokens.json", "demo-worker.log"} <= made, made
    # The file-system broker's routing tables too (kombu's default is ./control).
    assert (tmp_path / ".wabot" / "broker" / "control").is_dir()
    # The admin sign-in is this run's own, kept only where the demo's user can read it.
    assert (tmp_path / ".wabot" / "demo-admin-token").read_text().strip() == admin.group(1)
    assert "talking to builder 'Demo Bakery'" in out

    # The dashboard, on the demo's SQLite, shows the conversation the demo just had.
    assert page.status_code == 200
    assert "Nice to meet you, Ada!" in page.text and "Your name is Ada." in page.text
    assert "⚙ current_time" in page.text
    assert anonymous.status_code == 401
    assert builders.status_code == 200 and "Demo Bakery" in builders.text

    # What Prometheus scrapes, with the token the demo printed.
    assert receiver_metrics.status_code == 200
    assert 'wabot_webhooks_total{outcome="accepted",provider="twilio",webhook="message"} 9.0' in (
        receiver_metrics.text
    )
    assert worker_scrape.status_code == 200
    assert 'wabot_turns_total{outcome="replied",platform="whatsapp"} 14.0' in worker_scrape.text


def test_the_demo_talks_to_your_own_builder_and_answers_from_its_documents(
    wabot: Wabot, database_url: str, tmp_path: Path
) -> None:
    """The README's walk-through, on Postgres: create a builder, attach a number, load a
    document, then `make demo BUILDER=… ASK=…` converses with it and the metrics move."""
    created = wabot(
        "builder", "create", "--name", "Corner Shop", "--instructions", "Help.", "--json"
    )
    assert created.returncode == 0, created.stderr
    builder_id = json.loads(created.stdout)["id"]
    # The number belongs to a Meta app of its own: its webhooks are signed with its secret.
    key = {"CREDENTIALS_KEY": CREDENTIALS_KEY}
    attached = wabot(
        *("channel", "add", builder_id, "--provider", "meta", "--address", "123456789"),
        *("--app-secret", "-"),
        input="the-corner-shops-own-app-secret\n",
        env=key,
    )
    assert attached.returncode == 0, attached.stderr
    faq = tmp_path / "faq.md"
    faq.write_text("Parking: free parking behind the shop, entrance on Mill Lane.\n")
    loaded = wabot("docs", "add", builder_id, str(faq))
    assert loaded.returncode == 0, loaded.stderr

    demo = subprocess.run(
        [
            sys.executable,
            "-m",
            "worker.cli",
            "demo",
            "--builder",
            builder_id,
            "--ask",
            "Is there parking?",
        ],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "DATABASE_URL": database_url,
            "WABOT_DATA_DIR": str(tmp_path / ".wabot"),
            **key,
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert "talking to builder 'Corner Shop'" in out
    assert "── Twilio leg ──" not in out, "the builder has no Twilio number"
    assert "agent < I received your form: date: 2026-12-24, time: 10:00, people: 4." in out
    assert (
        "agent < From faq.md: Parking: free parking behind the shop, entrance on Mill Lane." in out
    )
    assert re.search(
        r"^metrics: webhooks accepted 6 · inbox waiting 0 · turns replied 6 · replies sent 6"
        r" · model tokens [1-9]\d* in / [1-9]\d* out$",
        out,
        re.M,
    ), out


def run_demo(folder: Path, *args: str, env: dict[str, str] | None = None) -> Completed:
    """`wabot demo ARGS` in `folder`, on embedded defaults plus `env`."""
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo", *args],
        env={"PATH": os.environ["PATH"], "HOME": str(folder), **(env or {})},
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_port_in_use_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        demo = run_demo(tmp_path, "--port", str(port))
    assert demo.returncode == 1
    assert demo.stderr == (
        f"demo failed: port {port} is in use: stop what serves it or choose another"
        " (make demo PORT=…, wabot demo --port …)\n"
    )
    assert "starting the receiver" not in demo.stdout
    assert time.monotonic() - started < 30


def test_an_unreachable_model_api_is_named_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"  # bound, never listening: connections refused
    demo = run_demo(tmp_path, env={"OPENAI_API_KEY": "sk-demo-test", "OPENAI_BASE_URL": base_url})
    assert demo.returncode == 1
    [line] = demo.stderr.splitlines()
    assert line.startswith(f"demo failed: model API unreachable: {base_url} ("), line
    assert "model:    OpenAI" in demo.stdout and "starting the" not in demo.stdout


def test_a_worker_that_dies_is_named_at_once(tmp_path: Path) -> None:
    """Killed mid-conversation (as the out-of-memory killer does): the demo says the
    worker stopped and how, at once, not "no reply within 60s" a minute later."""
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "demo"],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("talking to builder"):
                break
        [worker] = [
            pid for pid in children(process.pid) if b" worker --concurrency" in command_line(pid)
        ]
        killed = time.monotonic()
        os.kill(worker, signal.SIGKILL)
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1
    assert errors.strip().splitlines()[0] == (
        "demo failed: the worker stopped (killed by SIGKILL): no error in its log"
        f" {tmp_path / '.wabot' / 'demo-worker.log'}"
    )
    assert time.monotonic() - killed < 30


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
