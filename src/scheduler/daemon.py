"""The long-lived daemon: projection catch-up, the scheduler, and (optionally) the HTTP API.

One loop on the main thread keeps the read models caught up every few seconds and
maintains leadership; the leader runs an APScheduler (daily sweep, a catch-up sweep when
it starts leading, and a sweep after other processes record events, since a back-dated
import can make a lapse arise at once). The HTTP API runs in a uvicorn thread on the
same runtime, with ``/metrics`` added.

Sweeps run on a runtime of their own (opened by the caller's factory): the main runtime's
projector is shared with HTTP requests under one lock, and a sweep's saves catch up its
own projector, so no projector is ever driven from two threads.

Stopping (SIGTERM, SIGINT): the running sweep stops between chunks (each chunk is one
transaction, so nothing is half-written), the scheduler and the HTTP server shut down,
the leader lock is released, and :meth:`Daemon.run` returns 0.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, tzinfo
from time import monotonic
from types import FrameType
from typing import Any, Protocol

from apscheduler.schedulers.background import BackgroundScheduler

from projections.projector import Projector
from scheduler import jobs
from scheduler.clock import Clock, SystemClock
from scheduler.leader import LeaderLock, StoreInfo, lock_for
from scheduler.metrics import Metrics
from scheduler.reminders import DEFAULT_HORIZON_DAYS, StressTestLog
from scheduler.sweep import CHUNK_SIZE, Ledger, SweepResult, sweep

log = logging.getLogger("scheduler.daemon")


class DaemonLedger(Ledger, Protocol):
    """A runtime as the daemon sees it (``permanence.runtime.Runtime`` is one)."""

    @property
    def projector(self) -> Projector: ...

    @property
    def store(self) -> StoreInfo: ...

    def close(self) -> None: ...


@dataclass
class DaemonOptions:
    """How the daemon runs; the CLI fills it from its options and ``Settings``."""

    sweep_at: time = time(0, 5)
    timezone: tzinfo | None = None
    refresh_seconds: float = 2.0
    leader_retry_seconds: float = 5.0
    sweep_on_change: bool = True
    reminder_days: int = DEFAULT_HORIZON_DAYS
    chunk_size: int = CHUNK_SIZE
    host: str = "127.0.0.1"
    port: int = 8000
    http_shutdown_seconds: float = 3.0

    def tz(self) -> tzinfo:
        """The configured zone, or the machine's (as the CLI's "today" is)."""
        if self.timezone is not None:
            return self.timezone
        from tzlocal import get_localzone

        return get_localzone()


@dataclass
class _Leadership:
    """State that exists only while this daemon leads."""

    scheduler: BackgroundScheduler
    key: str
    stop: threading.Event = field(default_factory=threading.Event)


class Daemon:
    """One daemon process's moving parts, driven by :meth:`step` (or :meth:`run`)."""

    def __init__(
        self,
        ledger: DaemonLedger,
        open_sweep_ledger: Callable[[], DaemonLedger],
        options: DaemonOptions | None = None,
        clock: Clock | None = None,
        lock: LeaderLock | None = None,
        metrics: Metrics | None = None,
        stress_log: StressTestLog | None = None,
        refresh_lock: threading.Lock | None = None,
    ) -> None:
        self.ledger = ledger
        self.options = options or DaemonOptions()
        self.clock = clock or SystemClock(self.options.tz())
        ledger.app.today = self.clock.today  # the daemon's business date is the ledger's today
        self.lock = lock or lock_for(ledger.store)
        self.metrics = metrics or Metrics()
        self.stress_log = stress_log
        self.refresh_lock = refresh_lock or threading.Lock()
        self._open_sweep_ledger = open_sweep_ledger
        self._sweep_ledger: DaemonLedger | None = None
        self._leadership: _Leadership | None = None
        self._last_attempt: float | None = None
        self._swept_position = -1
        self._sweep_pending = threading.Event()
        self._sweeps_done = 0
        self._done = threading.Condition()
        self.last_sweep: SweepResult | None = None

    # ------------------------------------------------------------------ state

    @property
    def is_leader(self) -> bool:
        return self._leadership is not None

    def scheduled_jobs(self) -> list[str]:
        """Ids of jobs the leader has scheduled (empty when not leading)."""
        if self._leadership is None:
            return []
        return [j.id for j in self._leadership.scheduler.get_jobs()]

    # ------------------------------------------------------------------ the loop

    def step(self) -> None:
        """One tick: catch up the read models, keep or seek leadership, react to new events."""
        with self.refresh_lock:
            self.ledger.refresh()
        position = self.ledger.projector.position()
        self.metrics.observe_projection(position, self.ledger.projector.lag())
        self._keep_or_seek_leadership()
        leading = self._leadership
        if (leading is not None and self.options.sweep_on_change
                and position > self._swept_position and not self._sweep_pending.is_set()):
            self._sweep_pending.set()
            jobs.request(leading.scheduler, leading.key, "change")

    def run(self, stop: threading.Event, http_app: Any = None) -> int:
        """Run until ``stop`` is set; returns the exit code."""
        server, thread = (None, None)
        if http_app is not None:
            self.metrics.mount(http_app)
            server, thread = self._start_http(http_app)
            if server is None:
                self.close()
                return 1
        log.info("daemon started", extra={"fields": {
            "store": getattr(self.ledger.store, "kind", "?"), "http": http_app is not None,
            "sweep_at": self.options.sweep_at.strftime("%H:%M"), "today": self.clock.today().isoformat()}})
        code = 0
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception as e:  # noqa: BLE001 - a failed tick is retried next tick
                    log.error("tick failed", extra={"fields": {"error": repr(e)}})
                if thread is not None and not thread.is_alive():
                    log.error("http server stopped unexpectedly")
                    code = 1
                    break
                stop.wait(self.options.refresh_seconds)
        finally:
            self.close()
            if server is not None and thread is not None:
                server.should_exit = True
                thread.join(self.options.http_shutdown_seconds + 2)
            log.info("daemon stopped", extra={"fields": {"exit_code": code}})
        return code

    def close(self) -> None:
        """Stop leading (waiting for a sweep to reach a chunk boundary) and close what we opened."""
        self._stop_leading("shutdown")
        if self._sweep_ledger is not None:
            self._sweep_ledger.close()
            self._sweep_ledger = None

    # ------------------------------------------------------------------ leadership

    def _keep_or_seek_leadership(self) -> None:
        if self._leadership is not None:
            if not self.lock.still_held():
                self._stop_leading("lock lost")
            return
        now = monotonic()
        if self._last_attempt is not None and now - self._last_attempt < self.options.leader_retry_seconds:
            return
        self._last_attempt = now
        try:
            acquired = self.lock.try_acquire()
        except Exception as e:  # noqa: BLE001 - the store may be briefly unreachable
            log.warning("leader lock unavailable", extra={"fields": {"error": repr(e)}})
            return
        if acquired:
            self._start_leading()

    def _start_leading(self) -> None:
        tz = self.options.tz()
        key = f"daemon-{id(self):x}"
        scheduler = jobs.build_scheduler(self.ledger.store, tz)
        leadership = _Leadership(scheduler, key)
        jobs.register(key, lambda reason: self._run_job(reason, leadership.stop))
        self._sweep_pending.set()  # the start sweep is already on its way
        jobs.install(scheduler, key, self.options.sweep_at, tz)
        scheduler.start()
        self._leadership = leadership
        self.metrics.leader.set(1)
        log.info("leading the scheduler", extra={"fields": {"jobs": self.scheduled_jobs()}})

    def _stop_leading(self, why: str) -> None:
        leadership, self._leadership = self._leadership, None
        if leadership is None:
            return
        leadership.stop.set()
        try:
            leadership.scheduler.shutdown(wait=True)
        finally:
            jobs.unregister(leadership.key)
            self.lock.release()
            self._sweep_pending.clear()
            self.metrics.leader.set(0)
            log.info("stopped leading", extra={"fields": {"why": why}})

    # ------------------------------------------------------------------ sweeps

    def _run_job(self, reason: str, stop: threading.Event) -> None:
        try:
            self.sweep_now(reason, stop.is_set)
        except Exception as e:  # noqa: BLE001 - logged and counted; the next sweep retries
            self.metrics.observe_failure()
            log.error("sweep failed", extra={"fields": {
                "reason": reason, "error": repr(e), "trace": traceback.format_exc()}})
        finally:
            self._sweep_pending.clear()
            with self._done:
                self._sweeps_done += 1
                self._done.notify_all()

    def sweep_now(self, reason: str = "manual", should_stop: Callable[[], bool] = lambda: False,
                  as_of: date | None = None) -> SweepResult:
        """Run one sweep for today's business date on the sweep runtime."""
        if self._sweep_ledger is None:
            self._sweep_ledger = self._open_sweep_ledger()
            self._sweep_ledger.app.today = self.clock.today
        target = self._sweep_ledger
        target.refresh()
        self._swept_position = target.projector.position()
        day = as_of or self.clock.today()
        result = sweep(
            target, day,
            chunk_size=self.options.chunk_size,
            reminder_days=self.options.reminder_days,
            stress_log=self.stress_log,
            should_stop=should_stop,
        )
        self.metrics.observe_sweep(result)
        self.last_sweep = result
        log.info("sweep done", extra={"fields": {"reason": reason, **result.to_dict()}})
        return result

    def wait_for_sweeps(self, count: int, timeout: float) -> bool:
        """Block until ``count`` scheduled sweeps have finished (tests, tools)."""
        with self._done:
            return self._done.wait_for(lambda: self._sweeps_done >= count, timeout)

    # ------------------------------------------------------------------ http

    def _start_http(self, http_app: Any) -> tuple[Any, threading.Thread | None]:
        import uvicorn

        config = uvicorn.Config(
            http_app, host=self.options.host, port=self.options.port, log_config=None,
            access_log=False, lifespan="on",
            timeout_graceful_shutdown=int(self.options.http_shutdown_seconds),
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="http", daemon=True)
        thread.start()
        while thread.is_alive() and not server.started:
            thread.join(0.05)
        if not server.started:
            log.error("http server failed to start", extra={"fields": {
                "host": self.options.host, "port": self.options.port}})
            return None, None
        log.info("http listening", extra={"fields": {"host": self.options.host, "port": self.options.port}})
        return server, thread


def serve(daemon: Daemon, http_app: Any = None) -> int:
    """Run the daemon until SIGTERM or SIGINT; returns the exit code."""
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        return daemon.run(stop, http_app)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# ---------------------------------------------------------------------- logs

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "fields", "color_message"}


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", None) or {})
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class Plain(logging.Formatter):
    """Readable lines: the message followed by its fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None) or {}
        tail = " ".join(f"{k}={v}" for k, v in fields.items() if k != "trace")
        ts = datetime.fromtimestamp(record.created).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{ts} {record.levelname:<7} {record.name}: {record.getMessage()}"
        return f"{line} {tail}".rstrip()


def configure_logging(json_lines: bool, level: int = logging.INFO) -> None:
    """Log to stderr, as JSON lines or readable text."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines() if json_lines else Plain())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
