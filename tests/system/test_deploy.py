"""The compose stack as `docker compose up` runs it: every long-running service is
health-checked (the one-shot `migrate` is not), the optional ones wait behind their
profiles, and Prometheus scrapes where web and the workers serve their metrics, with
the token compose hands it. (Whether compose accepts the file is `docker compose
config`'s to say; the Docker CLI is not part of this suite.)"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.conftest import ROOT

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
PROMETHEUS: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def test_every_long_running_service_is_health_checked_behind_its_profile() -> None:
    unchecked = {name for name, service in SERVICES.items() if "healthcheck" not in service}
    assert unchecked == {"migrate"}
    assert SERVICES["migrate"]["restart"] == "no"
    profiles = {
        name: service["profiles"] for name, service in SERVICES.items() if "profiles" in service
    }
    assert profiles == {"flower": ["flower"], "prometheus": ["metrics"]}


def test_prometheus_scrapes_the_ports_web_and_every_worker_serve_with_the_token() -> None:
    shared = SERVICES["worker"]["environment"]
    assert shared is SERVICES["web"]["environment"]  # one anchor: the same token for both
    [worker_port] = re.findall(r"^\$\{METRICS_TOKEN:\+(\d+)\}$", shared["WORKER_METRICS_PORT"])
    web_command = SERVICES["web"]["command"]
    web_port = web_command[web_command.index("--port") + 1]
    token_file = "/run/secrets/metrics_token"
    assert {
        job["job_name"]: (job["dns_sd_configs"], job["authorization"])
        for job in PROMETHEUS["scrape_configs"]
    } == {
        "web": (
            [{"names": ["web"], "type": "A", "port": int(web_port)}],
            {"credentials_file": token_file},
        ),
        "worker": (
            [{"names": ["worker"], "type": "A", "port": int(worker_port)}],
            {"credentials_file": token_file},
        ),
    }
    assert SERVICES["prometheus"]["secrets"] == ["metrics_token"]
    assert COMPOSE["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
