"""A worker process's metrics over HTTP on WORKER_METRICS_PORT, for the holder of
METRICS_TOKEN: Celery workers are separate processes, so each serves its own."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import make_wsgi_app
from pydantic import SecretStr

from db.core.metrics_auth import metrics_authorized


class _Server(ThreadingMixIn, WSGIServer):
    """A slow scraper holds up nobody."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve_metrics(port: int, token: SecretStr, *, host: str = "0.0.0.0") -> WSGIServer:
    """Serve this process's metrics from a daemon thread; returns the server (port 0
    picks a free one, `server.server_port` says which)."""
    server = make_server(host, port, _protected(make_wsgi_app(), token), _Server, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="wabot-metrics", daemon=True).start()
    return server


def _protected(app: WSGIApplication, token: SecretStr) -> WSGIApplication:
    def protected(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not metrics_authorized(environ.get("HTTP_AUTHORIZATION"), token):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain; charset=utf-8"), ("WWW-Authenticate", "Bearer")],
            )
            return [b"send Authorization: Bearer <METRICS_TOKEN>\n"]
        return app(environ, start_response)

    return protected
