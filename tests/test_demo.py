"""`make demo` works on embedded defaults alone: no Postgres, Redis, OpenAI or Twilio."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_the_demo_converses_and_prints_the_transcript(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "demo"],
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
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
