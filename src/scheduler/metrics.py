"""Prometheus metrics of one daemon: projection progress, sweeps, leadership.

Each daemon owns a :class:`CollectorRegistry` (not the process-global one), so several
daemons in one test process never collide on metric names.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from scheduler.sweep import SweepResult

SWEEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class Metrics:
    """The daemon's metrics, and their text exposition for ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events_processed = Counter(
            "permanence_events_processed", "Events projected into the read models.", registry=r)
        self.projection_position = Gauge(
            "permanence_projection_position", "Last notification id projected.", registry=r)
        self.projection_lag = Gauge(
            "permanence_projection_lag", "Events recorded but not yet projected.", registry=r)
        self.sweep_duration = Histogram(
            "permanence_sweep_duration_seconds", "Wall time of one sweep.",
            buckets=SWEEP_BUCKETS, registry=r)
        self.sweeps = Counter("permanence_sweeps", "Sweeps run.", ["outcome"], registry=r)
        self.lapses = Counter(
            "permanence_lapses_recorded", "Monitoring lapses recorded by sweeps.", registry=r)
        self.defaults = Counter(
            "permanence_defaults_recorded", "Proponent defaults recorded by sweeps.", registry=r)
        self.periods = Counter(
            "permanence_periods_ended", "Monitoring periods ended by sweeps.", registry=r)
        self.reminders = Counter(
            "permanence_reminders_raised", "Reminders raised by sweeps.", registry=r)
        self.leader = Gauge(
            "permanence_scheduler_leader", "1 while this daemon leads the scheduler.", registry=r)
        self.last_sweep_as_of = Gauge(
            "permanence_last_sweep_business_date",
            "Business date of the last complete sweep, as a Unix timestamp (midnight UTC).",
            registry=r)
        self._position: int | None = None

    def observe_projection(self, position: int, lag: int) -> None:
        """Count events processed as the advance of the tracking position (by any process)."""
        if self._position is not None and position > self._position:
            self.events_processed.inc(position - self._position)
        self._position = position
        self.projection_position.set(position)
        self.projection_lag.set(lag)

    def observe_sweep(self, result: SweepResult) -> None:
        self.sweep_duration.observe(result.duration_ms / 1000)
        self.sweeps.labels("complete" if result.complete else "interrupted").inc()
        self.lapses.inc(result.lapses_recorded)
        self.defaults.inc(result.defaults_recorded)
        self.periods.inc(result.periods_ended)
        self.reminders.inc(result.reminders_raised)
        if result.complete:
            d = result.as_of
            self.last_sweep_as_of.set(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())

    def observe_failure(self) -> None:
        self.sweeps.labels("failed").inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def mount(self, app: Any) -> None:
        """Add ``GET /metrics`` to a FastAPI app, or join the app's own ``/metrics`` when it
        has one (its ``state.metrics.registries``)."""
        registries = getattr(getattr(app.state, "metrics", None), "registries", None)
        if isinstance(registries, list):
            registries.append(self.registry)
            return
        from fastapi import Response

        def metrics() -> Response:
            body, content_type = self.render()
            return Response(content=body, media_type=content_type)

        app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False)
