"""The Prometheus text for ``/metrics`` and the worker's own port."""

from __future__ import annotations

import os
import threading
from http.server import ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler

from flask import Flask
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from .collector import DatabaseCollector

__all__ = ["CONTENT_TYPE_LATEST", "metrics_text", "serve_worker_metrics"]


def multiprocess_dir() -> str | None:
    """The directory shared by every process of this host, when multiprocess mode is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _process_registry() -> CollectorRegistry:
    """Counters of every process on this host (multiprocess mode) or of this process."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return registry


def metrics_text(app: Flask) -> bytes:
    """Counters and histograms, then the gauges read from the database now."""
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector(app))
    return generate_latest(_process_registry()) + generate_latest(database)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        """Scrapes every few seconds would flood the worker's log."""


def serve_worker_metrics(app: Flask, host: str, port: int) -> ThreadingHTTPServer:
    """Serve this worker's metrics on ``host:port`` from a daemon thread; returns the server.

    In multiprocess mode the counters are the host's (as on ``/metrics``); otherwise this
    worker's own. The database gauges are the same as the web's.
    """
    from wsgiref.simple_server import WSGIServer, make_server

    class _ThreadingWSGIServer(WSGIServer, ThreadingHTTPServer):
        daemon_threads = True

    def application(environ, start_response):  # type: ignore[no-untyped-def]
        if environ.get("PATH_INFO") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        body = metrics_text(app)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]

    server = make_server(
        host, port, application, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    return server
