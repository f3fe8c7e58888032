"""The compose stack as `docker compose up` runs it: every long-running service is
health-checked (the one-shot `migrate` is not), the optional ones wait behind their
profiles, the webhooks and the dashboard run as processes apart, and Prometheus scrapes
where web, the dashboard and the workers serve their metrics, with the token compose
hands it. (Whether compose accepts the file is `docker compose config`'s to say; the
Docker CLI is not part of this suite.) The Procfile runs the same processes."""

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


def test_prometheus_scrapes_the_ports_web_dashboard_and_every_worker_serve_with_the_token() -> None:
    shared = SERVICES["worker"]["environment"]
    # one anchor: the same token for all
    assert shared is SERVICES["web"]["environment"] is SERVICES["dashboard"]["environment"]
    [worker_port] = re.findall(r"^\$\{METRICS_TOKEN:\+(\d+)\}$", shared["WORKER_METRICS_PORT"])
    web_port, dashboard_port = (_port(SERVICES[name]["command"]) for name in ("web", "dashboard"))
    token_file = "/run/secrets/metrics_token"
    assert {
        job["job_name"]: (job["dns_sd_configs"], job["authorization"])
        for job in PROMETHEUS["scrape_configs"]
    } == {
        "web": (
            [{"names": ["web"], "type": "A", "port": int(web_port)}],
            {"credentials_file": token_file},
        ),
        "dashboard": (
            [{"names": ["dashboard"], "type": "A", "port": int(dashboard_port)}],
            {"credentials_file": token_file},
        ),
        "worker": (
            [{"names": ["worker"], "type": "A", "port": int(worker_port)}],
            {"credentials_file": token_file},
        ),
    }
    assert SERVICES["prometheus"]["secrets"] == ["metrics_token"]
    assert COMPOSE["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}


def test_the_webhooks_and_the_dashboard_run_as_processes_apart() -> None:
    """What providers call carries no agent code: compose's `web` and the Procfile's `web`
    serve the webhook app, `dashboard` the dashboard app, both after the migrations and
    (the Procfile's) with the read deadline, as the image's uvicorn has it."""
    served = {name: _app(SERVICES[name]["command"]) for name in ("web", "dashboard")}
    assert served == {"web": "webhooks.app:app", "dashboard": "webhooks.dashboard.server:app"}
    for name in served:
        assert SERVICES[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
        assert SERVICES[name]["healthcheck"]["test"][-1].endswith("/readyz')")
    assert SERVICES["web"]["ports"] != SERVICES["dashboard"]["ports"]  # both on the host

    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert sorted(procfile) == ["dashboard", "release", "web", "worker"]
    for name, app in served.items():
        command = procfile[name].split()
        assert (command[0], _app(command)) == ("uvicorn", app)
        assert "--http webhooks.read_deadline:ReadDeadlineProtocol" in procfile[name]


def _app(command: list[str]) -> str:
    """The ASGI app a uvicorn command serves."""
    return command[command.index("uvicorn") + 1]


def _port(command: list[str]) -> str:
    return command[command.index("--port") + 1]
