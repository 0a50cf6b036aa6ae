"""``permanence sweep | simulate | daemon | reminders``: time-driven work, wired to a store.

The scheduler package knows nothing of configuration; this module turns ``Settings`` and
options into runtimes, clocks and daemon options and hands them over.
"""

from __future__ import annotations

import logging
import time as time_module
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, time, tzinfo
from typing import TYPE_CHECKING, Any

import typer

from permanence.cli.app import AS_OF, JSON, app, runtime, settings, today
from permanence.cli.choices import ReminderKind
from permanence.cli.errors import exits, guarded
from permanence.cli.output import Human, emit, table
from permanence.parsing import UsageError, to_date

if TYPE_CHECKING:
    from permanence.config import Settings
    from permanence.runtime import Runtime

#: ``scheduler.reminders.DEFAULT_HORIZON_DAYS`` and ``scheduler.sweep.CHUNK_SIZE``, spelled
#: here so that declaring the commands loads no scheduler module (a test checks they agree)
DEFAULT_HORIZON_DAYS = 90
CHUNK_SIZE = 1000

KIND = typer.Option(None, "--kind", help="Only this kind (repeatable).")
REMINDER_DAYS = typer.Option(
    DEFAULT_HORIZON_DAYS, "--reminder-days", min=0, help="Raise reminders due within N days."
)


# ---------------------------------------------------------------------- library entry points


def open_runtime(s: Settings, attempts: int = 5) -> Runtime:
    """Open a runtime, retrying briefly: two daemons starting at the same instant on one
    PostgreSQL database race in the event store's table creation (CREATE OR REPLACE
    FUNCTION fails with "tuple concurrently updated" in the loser)."""
    from eventsourcing.persistence import PersistenceError
    from sqlalchemy.exc import DBAPIError

    from permanence.runtime import Runtime

    for attempt in range(attempts):
        try:
            return Runtime(s)
        except (PersistenceError, DBAPIError):
            if attempt == attempts - 1:
                raise
            time_module.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


@contextmanager
def _open(runtime_or_settings: Runtime | Settings) -> Iterator[Runtime]:
    from permanence.runtime import Runtime

    if isinstance(runtime_or_settings, Runtime):
        yield runtime_or_settings
        return
    rt = Runtime(runtime_or_settings)
    try:
        yield rt
    finally:
        rt.close()


@contextmanager
def _open_copy(base: Settings, path: str) -> Iterator[Runtime]:
    """A runtime on a what-if copy, with the same profiles as the original."""
    from permanence.runtime import Runtime

    rt = Runtime(base.model_copy(update={"db": path}))
    try:
        yield rt
    finally:
        rt.close()


def simulate(
    runtime_or_settings: Runtime | Settings, start: date, end: date, step: str = "1y"
) -> list[dict[str, Any]]:
    """Play scheduler time from ``start`` to ``end`` on a copy of the ledger (see
    :mod:`scheduler.simulate`); one row per step. The ledger itself is not written to."""
    from scheduler.simulate import what_if

    with _open(runtime_or_settings) as rt:
        return what_if(rt, rt.store, lambda p: _open_copy(rt.settings, p), start, end, step)


# ---------------------------------------------------------------------- commands


@app.command("sweep")
@exits
def sweep_command(
    as_of: str = AS_OF,
    reminder_days: int = REMINDER_DAYS,
    chunk_size: int = typer.Option(CHUNK_SIZE, "--chunk-size", min=1, help="Vintages per transaction."),
    as_json: bool = JSON,
) -> None:
    """Run one sweep for a business date: lapses, defaults, period ends, reminders."""
    from risk.service import RecordedStressTests
    from scheduler.sweep import sweep

    day = to_date(as_of, "as-of") or today()
    with runtime() as rt:
        result = sweep(rt, day, chunk_size=chunk_size, reminder_days=reminder_days,
                       stress_log=RecordedStressTests(rt.app))
    emit(result.to_dict(), as_json, lambda d: (
        f"sweep {d['as_of']}: {d['lapses_recorded']:,} lapse(s), "
        f"{d['defaults_recorded']:,} default(s), {d['periods_ended']:,} period end(s), "
        f"{d['reminders_raised']:,} reminder(s) in {d['duration_ms']:.0f} ms"))


@app.command("simulate")
@exits
def simulate_command(
    start: str = typer.Option(..., "--from", help="First business date YYYY-MM-DD."),
    end: str = typer.Option(..., "--to", help="Last business date YYYY-MM-DD."),
    step: str = typer.Option("1y", "--step", help="Step: 1y, 6m, 2w, 30d ..."),
    as_json: bool = JSON,
) -> None:
    """What-if: sweep a copy of the ledger step by step; the ledger is not changed."""
    from scheduler.simulate import Step

    first, last = to_date(start, "from"), to_date(end, "to")
    assert first is not None and last is not None
    try:
        parsed = Step.parse(step)
        if last < first:
            raise ValueError(f"to: {last} is before from: {first}")
    except ValueError as e:
        raise UsageError(str(e)) from None
    rows = simulate(settings(), first, last, f"{parsed.count}{parsed.unit}")
    emit(rows, as_json, _simulation_text)


def _simulation_text(rows: list[dict[str, Any]]) -> Human:
    """One row per step: what the sweep recorded, what is due, the exposure and the buffer
    (what arose in each step is in ``--json``)."""
    if not rows:
        return "no steps"
    return table(
        [("as of", "left"), ("lapses", "right"), ("defaults", "right"), ("ended", "right"),
         ("due proponent", "right"), ("due pool", "right"), ("exposure", "right"),
         ("buffer", "right"), ("coverage", "right")],
        ([r["as_of"], r["lapses_recorded"], r["defaults_recorded"], r["periods_ended"],
          r["due"].get("proponent", 0), r["due"].get("pool", 0), r["exposure"],
          r["buffer_balance"], r["coverage_ratio"]] for r in rows))


def _reminders_text(rows: list[dict[str, Any]]) -> Human:
    if not rows:
        return "no reminders"
    return table(
        [("due on", "left"), ("kind", "left"), ("subject", "left"), ("project", "left"),
         ("open", "left")],
        ([r["due_on"], r["kind"].replace("_", " "), r["subject"],
          r["project"] if r["project"] != r["subject"] else None, r["open"]] for r in rows))


@app.command("reminders")
@exits
def reminders_command(
    kind: list[ReminderKind] = KIND,
    due_from: str = typer.Option(None, "--due-from", help="Only reminders due on or after this date."),
    due_to: str = typer.Option(None, "--due-to", help="Only reminders due on or before this date."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many."),
    show_all: bool = typer.Option(
        False, "--all", help="Also reminders that ended (what they asked for is recorded)."),
    as_json: bool = JSON,
) -> None:
    """List open reminders (verification, risk reassessment, stress test), soonest first.

    A reminder ends when what it asked for is recorded (``--all`` lists those too)."""
    from risk.service import RecordedStressTests
    from scheduler import reminders as reminder_store

    first, last = to_date(due_from, "due-from"), to_date(due_to, "due-to")
    with runtime() as rt:
        rows = reminder_store.list_reminders(
            rt.engine, [k.value for k in kind or []] or None, first, last, limit,
            RecordedStressTests(rt.app), open_only=not show_all)
    emit(rows, as_json, _reminders_text)


@app.command("daemon")
def daemon_command(
    http: bool = typer.Option(False, "--http", help="Also serve the HTTP API, with /metrics."),
    host: str = typer.Option("127.0.0.1", help="HTTP interface."),
    port: int = typer.Option(8000, help="HTTP port."),
    sweep_at: str = typer.Option("00:05", "--sweep-at", envvar="PERMANENCE_SWEEP_AT",
                                 help="Daily sweep time HH:MM."),
    tz_name: str = typer.Option(None, "--timezone", envvar="PERMANENCE_TIMEZONE",
                                help="Time zone of the business date and sweep time (default local)."),
    refresh_seconds: float = typer.Option(2.0, "--refresh-seconds", min=0.1,
                                          help="Projection catch-up interval."),
    sweep_on_change: bool = typer.Option(True, "--sweep-on-change/--no-sweep-on-change",
                                         help="Sweep again after other processes record events."),
    reminder_days: int = REMINDER_DAYS,
    log_json: bool = typer.Option(False, "--log-json", help="Structured logs as JSON lines."),
) -> None:
    """Run projection catch-up, the scheduler (daily and catch-up sweeps) and optionally HTTP."""
    from risk.service import RecordedStressTests
    from scheduler.daemon import Daemon, DaemonOptions, configure_logging, serve

    def body() -> int:
        options = DaemonOptions(
            sweep_at=_clock_time(sweep_at), timezone=_zone(tz_name),
            refresh_seconds=refresh_seconds, sweep_on_change=sweep_on_change,
            reminder_days=reminder_days, host=host, port=port,
        )
        configure_logging(log_json, logging.INFO)
        s = settings()
        rt = open_runtime(s)
        try:
            http_app = None
            lock = None
            if http:
                from permanence.http.app import create_app

                http_app = create_app(s, rt)
                lock = http_app.state.refresh_lock
            from scheduler.clock import FixedClock

            clock = FixedClock(s.today) if s.today else None
            daemon = Daemon(rt, lambda: open_runtime(s), options, clock=clock, refresh_lock=lock,
                            stress_log=RecordedStressTests(rt.app))
            return serve(daemon, http_app)
        finally:
            rt.close()

    code = guarded(body)
    if code:
        raise typer.Exit(code)


def _clock_time(text: str) -> time:
    try:
        hh, mm = text.strip().split(":")
        return time(int(hh), int(mm))
    except ValueError:
        raise UsageError(f"sweep-at: {text!r} is not a time HH:MM") from None


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"timezone: {name!r} is not a known time zone") from None
