"""The demo's view of the Prometheus metrics its receiver and worker serve: one line of
what moved, scraped the way Prometheus scrapes them."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@dataclass(frozen=True)
class MetricsEndpoints:
    receiver_url: str
    worker_url: str
    token: str

    def summary(self, builder_id: str) -> str:
        """Webhooks accepted, inbox waiting, turns, sends and the builder's tokens."""
        receiver, worker = self._scrape(self.receiver_url), self._scrape(self.worker_url)
        tokens = "wabot_model_tokens_total"
        return (
            f"webhooks accepted {total(receiver, 'wabot_webhooks_total', outcome='accepted')}"
            f" · inbox waiting {total(receiver, 'wabot_inbox_waiting_messages')}"
            f" · turns replied {total(worker, 'wabot_turns_total', outcome='replied')}"
            f" · replies sent {total(worker, 'wabot_sends_total', status='sent')}"
            f" · model tokens {total(worker, tokens, builder=builder_id, direction='input')} in"
            f" / {total(worker, tokens, builder=builder_id, direction='output')} out"
        )

    def _scrape(self, url: str) -> list[Sample]:
        response = httpx.get(url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        response.raise_for_status()
        return [
            sample
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        ]


def total(samples: list[Sample], name: str, **labels: str) -> int:
    """The sum of `name`'s samples carrying `labels` (whatever their other labels)."""
    return int(
        sum(
            sample.value
            for sample in samples
            if sample.name == name
            and all(sample.labels.get(key) == value for key, value in labels.items())
        )
    )
