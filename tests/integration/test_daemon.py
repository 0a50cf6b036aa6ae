"""The daemon: leadership, its job store, catch-up and change sweeps, metrics, and a real
process fed through the CLI and stopped by SIGTERM.

Waits are bounded (a sweep runs on the scheduler's worker thread), but nothing asserts how
long anything took.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
from eventsourcing.utils import get_topic
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from ledger.calendar import add_years
from ledger.events import MonitoringLapsed
from permanence.config import Settings, parse_store
from permanence.http.app import create_app
from permanence.runtime import Runtime
from scheduler.clock import FixedClock
from scheduler.daemon import Daemon, DaemonOptions, JsonLines
from scheduler.jobs import DAILY_SWEEP, JOB_TABLE
from scheduler.leader import AdvisoryLeaderLock

WAIT = 60.0
VENV_BIN = Path(sys.executable).parent


def lapses(rt: Runtime) -> int:
    return len(rt.app.recorder.select_notifications(
        start=1, limit=100_000, topics=[get_topic(MonitoringLapsed)]))


def make_daemon(db_url: str, day: date) -> Daemon:
    options = DaemonOptions(leader_retry_seconds=0)
    return Daemon(Runtime(Settings(db=db_url)), lambda: Runtime(Settings(db=db_url)), options,
                  clock=FixedClock(day))


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons made by a test; each is closed with its runtime afterwards."""
    made: list[Daemon] = []
    yield made
    for d in made:
        d.close()
        d.ledger.close()


def job_ids(db_url: str) -> list[str]:
    """Job ids in the job store, read straight from the ledger's database."""
    store = parse_store(db_url)
    table = f"{store.schema}.{JOB_TABLE}" if store.schema else JOB_TABLE
    engine = create_engine(store.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(text(f"SELECT id FROM {table}"))]
    finally:
        engine.dispose()


def test_one_daemon_leads_and_its_jobs_live_in_the_ledger(db_url: str, daemons: list[Daemon]) -> None:
    first = make_daemon(db_url, date(2025, 6, 1))
    second = make_daemon(db_url, date(2025, 6, 1))
    daemons += [first, second]
    first.step()
    assert first.is_leader
    assert first.wait_for_sweeps(1, WAIT)  # the catch-up sweep at start
    second.step()
    assert not second.is_leader
    assert second.scheduled_jobs() == []
    assert DAILY_SWEEP in first.scheduled_jobs()
    assert job_ids(db_url) == [DAILY_SWEEP]  # in the ledger's database (and schema)

    first.close()
    assert not first.is_leader
    second.step()
    assert second.is_leader
    assert job_ids(db_url) == [DAILY_SWEEP]  # replaced, not duplicated


def test_start_sweep_catches_up_missed_work(db_url: str, daemons: list[Daemon]) -> None:
    d = make_daemon(db_url, date(2031, 1, 1))
    daemons.append(d)
    vid = d.ledger.app.issue(program="icvcm-ccp", project="P1", quantity=80_000, buffer=20_000,
                             on=date(2025, 1, 1))
    d.step()
    assert d.wait_for_sweeps(1, WAIT)
    assert d.last_sweep is not None and d.last_sweep.lapses_recorded == 1
    assert d.ledger.app.vintage(vid).reversals["L1"].on == date(2030, 1, 2)
    body, _ = d.metrics.render()
    assert "permanence_lapses_recorded_total 1.0" in body.decode()
    assert "permanence_scheduler_leader 1.0" in body.decode()


def test_events_recorded_elsewhere_trigger_a_sweep(db_url: str, daemons: list[Daemon]) -> None:
    d = make_daemon(db_url, date(2031, 1, 1))
    daemons.append(d)
    d.step()
    assert d.wait_for_sweeps(1, WAIT)
    other = Runtime(Settings(db=db_url))
    try:
        other.app.issue(program="acr", project="P2", quantity=1_000, buffer=200, on=date(2025, 1, 1))
    finally:
        other.close()
    d.step()
    assert d.wait_for_sweeps(2, WAIT)
    assert lapses(d.ledger) == 1
    assert d.last_sweep is not None and d.last_sweep.lapses_recorded == 1


def test_http_app_gains_metrics(db_url: str, daemons: list[Daemon]) -> None:
    d = make_daemon(db_url, date(2031, 1, 1))
    daemons.append(d)
    app = create_app(Settings(db=db_url), d.ledger)  # type: ignore[arg-type]
    d.metrics.mount(app)
    d.step()
    with TestClient(app) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    for name in ("permanence_events_processed_total", "permanence_projection_lag",
                 "permanence_sweep_duration_seconds", "permanence_lapses_recorded_total"):
        assert name in metrics.text


def test_json_log_lines_carry_their_fields() -> None:
    record = logging.LogRecord("scheduler.daemon", logging.INFO, __file__, 1, "sweep done", None, None)
    record.fields = {"lapses_recorded": 3, "as_of": "2031-01-01"}
    line = json.loads(JsonLines().format(record))
    assert line["msg"] == "sweep done" and line["level"] == "info"
    assert line["lapses_recorded"] == 3 and line["as_of"] == "2031-01-01"


# ---------------------------------------------------------------------- a real process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(db_url: str, *args: str) -> dict[str, object]:
    env = {**os.environ, "PERMANENCE_DB": db_url}
    out = subprocess.run([str(VENV_BIN / "permanence"), *args, "--json"], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def poll(url: str, until: object, deadline: float) -> httpx.Response | None:
    """GET ``url`` until ``until(response)`` holds or the deadline passes."""
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            if until(response):  # type: ignore[operator]
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return None


@pytest.mark.slow
def test_daemon_process_sweeps_serves_and_stops_on_sigterm(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # the daemon runs on the machine's clock here, not the suite's fixed far-off today
    env = {**{k: v for k, v in os.environ.items() if k != "PERMANENCE_TODAY"},
           "PERMANENCE_DB": db_url}
    err = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [str(VENV_BIN / "permanence"), "daemon", "--http", "--port", str(port), "--log-json",
         "--refresh-seconds", "0.5"],
        env=env, stdout=subprocess.DEVNULL, stderr=err,
    )
    try:
        deadline = time.monotonic() + WAIT
        assert poll(f"{base}/healthz", lambda r: r.status_code == 200, deadline) is not None

        # issued five years and a month ago, never verified: its lapse arose about a month ago
        issued = add_years(date.today(), -5) - timedelta(days=30)
        vid = cli(db_url, "issue", "--program", "icvcm-ccp", "--project", "LATE",
                  "--quantity", "80000", "--buffer", "20000", "--on", issued.isoformat())["vintage_id"]

        shown = poll(f"{base}/vintages/{vid}", lambda r: r.json().get("status") == "lapsed", deadline)
        assert shown is not None, "the daemon never recorded the lapse"
        arose = add_years(issued, 5) + timedelta(days=1)  # dated when it arose, not today
        assert shown.json()["reversals"][0]["on"] == arose.isoformat()
        owed = httpx.get(f"{base}/liabilities", timeout=5).json()
        assert owed["due"] == {"proponent": 20_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert "permanence_lapses_recorded_total 1.0" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        err.close()
    logged = (tmp_path / "daemon.log").read_text().splitlines()
    assert code == 0, "\n".join(logged[-20:])
    entries = [json.loads(line) for line in logged if line.strip()]
    assert any(e["msg"] == "daemon stopped" for e in entries)
    assert any(e["msg"] == "sweep done" and e.get("lapses_recorded") == 1 for e in entries)


def test_a_leader_whose_lock_session_dies_steps_down(pg_url: str, daemons: list[Daemon]) -> None:
    """PostgreSQL: leadership is the advisory lock's session; when it dies, another leads."""
    import psycopg

    first = make_daemon(pg_url, date(2025, 6, 1))
    second = make_daemon(pg_url, date(2025, 6, 1))
    daemons += [first, second]
    first.step()
    assert first.is_leader and first.wait_for_sweeps(1, WAIT)
    assert isinstance(first.lock, AdvisoryLeaderLock)
    key = first.lock.key & 0xFFFF_FFFF_FFFF_FFFF
    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = %s AND objid = %s AND objsubid = 1 AND granted",
            (key >> 32, key & 0xFFFF_FFFF)).fetchall()
    assert killed == [(True,)]
    first.step()
    assert not first.is_leader
    second.step()
    assert second.is_leader
