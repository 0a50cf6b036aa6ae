"""Request metrics of one app, for ``GET /metrics`` (Prometheus text format).

Counted by route template (``/vintages/{vintage_id}``, never the raw path, so ids do not
multiply the series), method and status. Each app owns a :class:`CollectorRegistry` (not the
process-global one), so several apps in one process never collide; other registries (the
daemon's, when it serves the API) are exposed beside it through :attr:`HttpMetrics.registries`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import Match

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
UNMATCHED = "unmatched"
"""The route label of a request no route takes (a 404 for an unknown path)."""


class HttpMetrics:
    """The app's request counters and latency histograms, and the registries ``/metrics``
    shows."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "permanence_http_requests", "HTTP requests answered.",
            ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "permanence_http_request_duration_seconds",
            "Time from the request's arrival to the end of its answer.",
            ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registries: list[CollectorRegistry] = [self.registry]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)

    def render(self) -> bytes:
        return b"".join(generate_latest(r) for r in self.registries)


class RequestMetrics:
    """ASGI middleware timing each HTTP request and counting it by route template."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, routes: Callable[[], list[Any]]
                 ) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self.metrics.observe(scope.get("method", "GET"), self._template(scope), status,
                                 time.perf_counter() - started)

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:  # refused before routing (a body over the limit): match it now
            route = next((r for r in self.routes() if r.matches(scope)[0] == Match.FULL), None)
        path = getattr(route, "path", None)
        return path if isinstance(path, str) and path else UNMATCHED


__all__ = ["HttpMetrics", "RequestMetrics"]
