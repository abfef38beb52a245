"""The operators' HTTP endpoint: ``/metrics`` (prometheus-client's WSGI app), ``/healthz`` and ``/readyz``
(lptem.service.health; 200 or 503 with a JSON body) on one threading HTTP(S) server.

prometheus-client's own ``start_http_server`` wraps the listening socket in TLS, so the handshake runs
inside ``accept()`` on the one serving thread: a client that connects and says nothing stops every scrape,
and the daemon's shutdown waits for it. Here each connection's handshake and request run in that
connection's own thread, with a time limit.
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    Info,
    PlatformCollector,
    ProcessCollector,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from lptem.service.health import Health, HealthReport
from lptem.service.runtime import GC_PAUSES, PAUSE_BUCKETS_S

log = logging.getLogger(__name__)

CONNECTION_TIMEOUT_S = 10.0
"""A scraper has this long for the TLS handshake and for each read of its request."""


class _Handler(WSGIRequestHandler):
    timeout = CONNECTION_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one line per scrape would flood the log)."""


class _Server(ThreadingWSGIServer):
    tls: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """In the connection's thread: the TLS handshake (bounded), then the request."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(CONNECTION_TIMEOUT_S)
        try:
            secure = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:  # no client certificate, plain HTTP, a silent client
            log.debug("metrics: refused a connection from %s: %s", client_address, exc)
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            secure.close()


def tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """HTTPS with ``cert``/``key``; with ``client_ca``, only clients with a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        context.load_verify_locations(cafile=str(client_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def operators_registry(daemon: Collector, build_info: dict[str, str]) -> CollectorRegistry:
    """The daemon's collector, lptem_build_info (``build_info`` as labels) and the process's CPU, memory,
    open files and garbage collections."""
    registry = CollectorRegistry()
    registry.register(daemon)
    Info("lptem_build", "The daemon's version and what it runs", registry=registry).info(build_info)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(GcPauseCollector())
    return registry


class GcPauseCollector(Collector):
    """``lptem_gc_pause_seconds{generation}``: how long each garbage collection stopped every thread."""

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(
            "lptem_gc_pause_seconds",
            "Garbage collections of the daemon process by generation: each stops every thread",
            labels=["generation"],
        )
        for pauses in GC_PAUSES.snapshot():
            cumulative = list(itertools.accumulate(pauses.bucket_counts))
            bounds = [*map(str, PAUSE_BUCKETS_S), "+Inf"]
            family.add_metric(
                [str(pauses.generation)], list(zip(bounds, cumulative, strict=True)), pauses.total_s
            )
        yield family
        longest = GaugeMetricFamily(
            "lptem_gc_longest_pause_seconds",
            "The longest garbage-collection pause of the daemon process so far, by generation",
            labels=["generation"],
        )
        for pauses in GC_PAUSES.snapshot():
            longest.add_metric([str(pauses.generation)], pauses.longest_s)
        yield longest


def operators_app(registry: CollectorRegistry, health: Health | None) -> Callable[..., Iterable[bytes]]:
    """WSGI: ``/healthz`` and ``/readyz`` from ``health`` (when given), every other path the metrics."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if health is None or path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)  # type: ignore[no-any-return]
        report = health.live() if path == "/healthz" else health.ready()
        body = _report_body(report)
        status = "200 OK" if report.ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return app


def _report_body(report: HealthReport) -> bytes:
    text = {"ok": report.ok, "problems": report.problems, "checks": report.checks}
    return (json.dumps(text) + "\n").encode()


def start_metrics_server(
    port: int,
    addr: str,
    registry: CollectorRegistry,
    tls: ssl.SSLContext | None = None,
    health: Health | None = None,
) -> ThreadingWSGIServer:
    """Serve ``registry`` (and ``health``) on ``addr:port`` (HTTPS with ``tls``) from a background thread;
    stop it with ``shutdown()`` and ``server_close()``."""
    family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
    server_class = type("_MetricsServer", (_Server,), {"address_family": family, "tls": tls})
    server: ThreadingWSGIServer = make_server(
        addr, port, operators_app(registry, health), server_class=server_class, handler_class=_Handler
    )
    threading.Thread(target=server.serve_forever, name="lptem-metrics", daemon=True).start()
    return server
