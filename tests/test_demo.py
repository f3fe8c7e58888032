"""`make demo` works on embedded defaults alone: no Postgres, Redis, OpenAI or Twilio;
it ends with the dashboard URL and a token, and `--serve` keeps that dashboard up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ADMIN = "demo-test-admin-token-123456"


def test_the_demo_converses_prints_the_transcript_and_serves_the_dashboard(
    tmp_path: Path,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "demo", "--serve"],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ADMIN_TOKEN": ADMIN},
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
            if line.startswith("token:") or "demo failed" in line:
                break
        out = "".join(lines)
        assert "token:" in out, out
        conversation = re.search(r"^conversation: (\S+)$", out, re.M)
        token = re.search(r"^token: +(\S+)$", out, re.M)
        assert conversation and token
        as_builder = {"Authorization": f"Bearer {token.group(1)}"}
        page = httpx.get(conversation.group(1), headers=as_builder, timeout=15)
        anonymous = httpx.get(conversation.group(1), timeout=15)
        base_url = conversation.group(1).split("/sessions/")[0]
        builders = httpx.get(
            f"{base_url}/builders", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=15
        )
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
    transcript = twilio_leg.split("read back from session_items:")[1]
    assert "current_time(" in transcript and "assistant Your name is Ada." in transcript
    assert "subscription handshake) → 200 42" in meta_leg
    assert "(POST /webhooks/meta, signed → 200)" in meta_leg
    meta_transcript = meta_leg.split("read back from session_items:")[1]
    assert "user      [location: 52.3731, 4.8922, Dam]" in meta_transcript
    assert "assistant Your name is Grace." in meta_transcript
    assert (tmp_path / ".wabot" / "wabot.db").exists()

    # The dashboard, on the demo's SQLite, shows the conversation the demo just had.
    assert page.status_code == 200
    assert "Nice to meet you, Ada!" in page.text and "Your name is Ada." in page.text
    assert "⚙ current_time" in page.text
    assert anonymous.status_code == 401
    assert builders.status_code == 200 and "Demo Bakery" in builders.text
