"""Prometheus metrics of the server and the HTTP endpoint that serves them (GET /metrics).

| name | type | labels | meaning |
|---|---|---|---|
| allsuse_grpc_requests_total | counter | method, code | finished RPCs by full method name and status code |
| allsuse_grpc_request_duration_seconds | histogram | method | RPC latency (a stream: its whole life) |
| allsuse_grpc_requests_in_flight | gauge | | RPCs being served now |
| allsuse_service_serving | gauge | | 1 while health says SERVING, else 0 |
| allsuse_component_up | gauge | component | 1 while the component is RUNNING or DEGRADED |

Each server has its own CollectorRegistry (tests build several in one process). Method labels come only from
registered methods, so clients cannot grow the label set.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServerMetrics:
    """The collectors the interceptors and the lifecycle update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "allsuse_grpc_requests",
            "Finished RPCs by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "allsuse_grpc_request_duration_seconds",
            "RPC latency by method.",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("allsuse_grpc_requests_in_flight", "RPCs being served.", registry=self.registry)
        self.serving = Gauge("allsuse_service_serving", "1 while health is SERVING.", registry=self.registry)
        self.component_up = Gauge(
            "allsuse_component_up",
            "1 while a component is RUNNING or DEGRADED.",
            ["component"],
            registry=self.registry,
        )

        self.decisions = Counter(
            "allsuse_decisions",
            "Decisions by compliance outcome and action.",
            ["outcome", "action"],
            registry=self.registry,
        )
        self.market_open = Gauge("allsuse_market_open", "1 while the NYSE session is open.", registry=self.registry)
        self.commit_batches = Gauge(
            "allsuse_store_commit_batches", "Group commits since the store opened.", registry=self.registry
        )
        self.cache_hit_rate = Gauge(
            "allsuse_cache_hit_rate", "Hit rate of the service's response cache (0..1).", registry=self.registry
        )
        self._methods: dict[str, MethodMetrics] = {}

    def observe(self, method: str, code: str, seconds: float) -> None:
        """Records one finished RPC."""
        self.method(method).observe(code, seconds)

    def method(self, method: str) -> MethodMetrics:
        """The children of one method's labels, resolved once (a `labels()` lookup per call takes a lock and
        builds tuples)."""
        found = self._methods.get(method)
        if found is None:
            found = self._methods[method] = MethodMetrics(self, method)
        return found

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)


class MethodMetrics:
    """One method's latency child and its request counters by code (made on first use: a bounded set)."""

    __slots__ = ("_codes", "_method", "_requests", "latency")

    def __init__(self, metrics: ServerMetrics, method: str) -> None:
        self._method = method
        self._requests = metrics.requests
        self._codes: dict[str, Any] = {}
        self.latency = metrics.latency.labels(method)

    def observe(self, code: str, seconds: float) -> None:
        """Records one finished call of the method."""
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self._requests.labels(self._method, code)
        counter.inc()
        self.latency.observe(seconds)


class MetricsEndpoint:
    """Serves a ServerMetrics registry over HTTP on host:port (port 0 picks one); a registry component."""

    def __init__(self, metrics: ServerMetrics, host: str, port: int, *, name: str = "metrics") -> None:
        self.name = name
        self.depends_on: tuple[str, ...] = ()
        self.critical = False  # without metrics the service still serves
        self._metrics = metrics
        self._host = host
        self._port = port
        self._httpd: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        return self._port if self._httpd is None else int(self._httpd.server_port)

    async def start(self) -> None:
        """Binds and serves from a daemon thread."""
        self._httpd, self._thread = await asyncio.to_thread(
            start_http_server, self._port, self._host, self._metrics.registry
        )

    async def stop(self) -> None:
        """Stops serving and closes the socket."""
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            await asyncio.to_thread(httpd.shutdown)
            httpd.server_close()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2.0)
            self._thread = None


__all__ = ["LATENCY_BUCKETS", "MethodMetrics", "MetricsEndpoint", "ServerMetrics"]
