"""The buffer stress test's audit trail (ICVCM CIWP recommendation 3), as pure domain code.

A pool must be stress-tested at least every five years, and the parameters and results
published. Each pool has one ``StressTest`` aggregate, whose id is derived from the pool's
name (:func:`stress_test_id`), so any process finds it without an index. Each run is one
``StressTestRun`` event: the first one starts the stream, later ones extend it. The
event's ``on`` is the business date the pool was tested as of; eventsourcing's
``timestamp`` says when the run was recorded, and ``recorded_by`` who recorded it.

Parameters and results are stored as plain JSON (the mapper writes readable JSON), so a
published figure can always be traced to the exact inputs that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import BaseAggregate, CanInitAggregate, CanMutateAggregate
from eventsourcing.utils import get_topic, register_topic

from ledger.calendar import add_years
from ledger.errors import InvalidCommand
from ledger.events import DomainEvent

_ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://permanence.example/stress-test")


def stress_test_id(pool: str) -> UUID:
    """Deterministic id of a pool's stress-test record: every process derives the same one."""
    _check_text("pool", pool)
    return uuid5(_ID_NAMESPACE, pool)


class StressTestRun(DomainEvent, CanInitAggregate[UUID]):
    """A stress test of a pool was run; what it assumed and what it found.

    One class serves the first run (which starts the pool's stream) and every later run
    (which extends it), so the stream holds exactly one event per run.
    """

    originator_topic: str
    on: date
    pool: str
    run_id: str
    model: str
    parameters: dict[str, Any]
    results: dict[str, Any]

    def mutate(self, aggregate: Any) -> Any:
        """Start the stream on the first run, extend it on later ones."""
        if aggregate is None:
            return CanInitAggregate.mutate(self, None)
        return CanMutateAggregate.mutate(self, aggregate)

    def apply(self, aggregate: Any) -> None:
        aggregate.when(self)


class StressTest(BaseAggregate[UUID]):
    """A pool's stress-test record: every run, in the order they were recorded."""

    def __init__(self) -> None:
        """State is set by :meth:`when` from each ``StressTestRun``."""
        self.pool = ""
        self.runs: list[StressTestRun] = []

    @classmethod
    def first_run(
        cls,
        pool: str,
        on: date,
        model: str,
        parameters: Mapping[str, Any],
        results: Mapping[str, Any],
    ) -> StressTest:
        """Record a pool's first stress test; its stream begins here."""
        event = _checked_run(pool, model, parameters, results)
        return cls._create(StressTestRun, id=stress_test_id(pool), on=on, run_id="ST1", **event)

    def record_run(
        self,
        on: date,
        model: str,
        parameters: Mapping[str, Any],
        results: Mapping[str, Any],
    ) -> str:
        """Record a later run on the same pool; returns its run id."""
        event = _checked_run(self.pool, model, parameters, results)
        run_id = f"ST{len(self.runs) + 1}"
        self.trigger_event(
            StressTestRun,
            originator_topic=get_topic(type(self)),
            on=on,
            run_id=run_id,
            **event,
        )
        return run_id

    def when(self, event: StressTestRun) -> None:
        """Apply a run to state."""
        self.pool = event.pool
        self.runs.append(event)

    # ------------------------------------------------------------------ reads

    @property
    def latest(self) -> StressTestRun | None:
        """The most recently recorded run (not necessarily the latest ``on``)."""
        return self.runs[-1] if self.runs else None

    def next_due(self, interval_years: int) -> date | None:
        """When the next test is due: ``interval_years`` after the latest tested date."""
        if not self.runs:
            return None
        if interval_years < 1:
            raise InvalidCommand(f"interval_years: {interval_years} must be at least 1")
        return add_years(max(run.on for run in self.runs), interval_years)

    def listing(self) -> list[dict[str, Any]]:
        """Every run as plain values, newest recorded first."""
        return [run_summary(run) for run in reversed(self.runs)]


def run_summary(run: StressTestRun) -> dict[str, Any]:
    """One run as plain JSON-ready values."""
    return {
        "run_id": run.run_id,
        "pool": run.pool,
        "on": run.on.isoformat(),
        "recorded_at": run.timestamp.isoformat(),
        "recorded_by": run.recorded_by,
        "model": run.model,
        "parameters": run.parameters,
        "results": run.results,
    }


# --------------------------------------------------------------------------- checks


def _checked_run(
    pool: str, model: str, parameters: Mapping[str, Any], results: Mapping[str, Any]
) -> dict[str, Any]:
    _check_text("pool", pool)
    _check_text("model", model)
    if not isinstance(parameters, Mapping) or not isinstance(results, Mapping):
        raise InvalidCommand("parameters and results: expected tables of values")
    if not results:
        raise InvalidCommand("results: a stress-test run must publish its results")
    return {
        "pool": pool,
        "model": model,
        "parameters": json_ready(parameters, "parameters"),
        "results": json_ready(results, "results"),
    }


def _check_text(field: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidCommand(f"{field}: must be a non-empty name")


def json_ready(value: Any, where: str) -> Any:
    """A copy in plain JSON types; a non-finite number becomes None (JSON has no infinity)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidCommand(f"{where}: key {key!r} is not text")
            out[key] = json_ready(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [json_ready(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise InvalidCommand(f"{where}: {type(value).__name__} is not a JSON value")


__all__ = ["StressTest", "StressTestRun", "json_ready", "run_summary", "stress_test_id"]


# Records made before the risk package existed name their classes by the old module.
register_topic("ledger.stress_record:StressTestRun", StressTestRun)
register_topic("ledger.stress_record:StressTest", StressTest)
