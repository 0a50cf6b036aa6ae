"""The sweep, reminders, the what-if simulation and the leader locks, on both backends.

Figures come from the brief's reference semantics (domain.md section 4), to the tonne and
the day. Sweeps are driven by business dates, never by the wall clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from eventsourcing.utils import get_topic
from sqlalchemy import func, select
from typer.testing import CliRunner

from ledger.events import MonitoringLapsed, PeriodEnded, ProponentDefaulted
from permanence.cli.main import app as cli
from permanence.cli.scheduling import simulate
from permanence.config import Settings, parse_store
from permanence.runtime import Runtime
from projections.queries import liabilities
from scheduler.clock import FixedClock
from scheduler.daemon import Daemon
from scheduler.leader import AdvisoryLeaderLock, FileLeaderLock, lock_for
from scheduler.reminders import (
    RISK_REASSESSMENT_DUE,
    STRESS_TEST_DUE,
    VERIFICATION_DUE,
    list_reminders,
)
from scheduler.simulate import Step, schedule
from scheduler.sweep import sweep
from scheduler.tables import ensure_tables, reminders


def count(rt: Runtime, event_class: type) -> int:
    """How many events of this class the store holds."""
    found = rt.app.recorder.select_notifications(start=1, limit=1_000_000, topics=[get_topic(event_class)])
    return len(found)


def issue(rt: Runtime, program: str = "icvcm-ccp", on: date = date(2025, 1, 1),
          quantity: int = 80_000, buffer: int = 20_000, project: str = "P1", **kw: object) -> str:
    return rt.app.issue(program=program, project=project, vintage_year=on.year, quantity=quantity,
                        buffer=buffer, on=on, **kw)


@pytest.fixture
def daemon(runtime: Runtime, db_url: str) -> Iterator[Daemon]:
    """A daemon on a fixed clock; its sweeps run on a second runtime, as in production."""
    d = Daemon(runtime, lambda: Runtime(Settings(db=db_url)), clock=FixedClock(date(2025, 1, 1)))
    try:
        yield d
    finally:
        d.close()


# ---------------------------------------------------------------------- the sweep


def test_worked_example_with_an_injected_clock(runtime: Runtime, daemon: Daemon) -> None:
    vid = issue(runtime)
    clock = daemon.clock
    assert isinstance(clock, FixedClock)
    clock.set(date(2029, 6, 30))  # the daemon's today is the ledger's: nothing dated after it
    runtime.app.verify(vid, date(2029, 6, 30))

    clock.set(date(2034, 6, 30))
    assert daemon.sweep_now().lapses_recorded == 0

    clock.set(date(2034, 7, 1))
    result = daemon.sweep_now()
    assert result.lapses_recorded == 1
    lapse = runtime.app.vintage(vid).reversals["L1"]
    assert (lapse.on, lapse.quantity, lapse.classification, lapse.obligor) == (
        date(2034, 7, 1), 20_000, "avoidable", "proponent")

    clock.set(date(2036, 1, 1))
    first, again = daemon.sweep_now(), daemon.sweep_now()
    assert first.lapses_recorded == 0
    assert first.defaults_recorded == 1  # the 365-day surrender deadline passed on 2035-07-01
    assert (again.lapses_recorded, again.defaults_recorded, again.periods_ended,
            again.reminders_raised) == (0, 0, 0, 0)
    runtime.refresh()
    assert count(runtime, MonitoringLapsed) == 1
    assert liabilities(runtime.engine, date(2034, 6, 30))["due"] == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert liabilities(runtime.engine, date(2034, 7, 1))["due"] == {"proponent": 20_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert liabilities(runtime.engine, date(2035, 7, 2))["due"] == {"proponent": 0, "pool": 20_000, "fund": 0, "jurisdiction": 0, "insurer": 0}


def test_all_issued_basis_lapses_q_plus_b(runtime: Runtime) -> None:
    vid = issue(runtime, "acr", quantity=1_000, buffer=200)
    assert sweep(runtime, date(2030, 1, 1)).lapses_recorded == 0
    assert sweep(runtime, date(2031, 1, 1)).lapses_recorded == 1
    lapse = runtime.app.vintage(vid).reversals["L1"]
    assert (lapse.on, lapse.quantity) == (date(2030, 1, 2), 1_200)
    assert liabilities(runtime.engine, date(2030, 1, 2))["due"] == {"proponent": 1_200, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}


def test_a_cure_counts_only_where_the_profile_allows_it(runtime: Runtime) -> None:
    verra = issue(runtime, "verra-vcs", quantity=1_000, buffer=300, project="V")
    ccp = issue(runtime, "icvcm-ccp", quantity=1_000, buffer=300, project="C")
    assert sweep(runtime, date(2031, 1, 1)).lapses_recorded == 2
    for vid in (verra, ccp):
        runtime.app.verify(vid, date(2031, 2, 1))

    assert sweep(runtime, date(2031, 3, 1)).lapses_recorded == 0
    assert sweep(runtime, date(2033, 1, 1)).lapses_recorded == 0
    assert count(runtime, MonitoringLapsed) == 2
    assert runtime.app.vintage(verra).reversals["L1"].cured_on == date(2031, 2, 1)
    assert runtime.app.vintage(ccp).reversals["L1"].cured_on is None
    assert runtime.app.show(verra, date(2031, 3, 1))["due"] == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert runtime.app.show(verra, date(2031, 3, 1))["on_hold"] == 0
    # not cured: still owed, and past its 365-day deadline the pool owes it
    assert runtime.app.show(ccp, date(2031, 1, 1))["due"] == {"proponent": 300, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert runtime.app.show(ccp, date(2031, 3, 1))["due"] == {"proponent": 0, "pool": 300, "fund": 0, "jurisdiction": 0, "insurer": 0}
    # the cured vintage is monitored again: its next lapse arises from the new verification
    assert sweep(runtime, date(2036, 2, 2)).lapses_recorded == 1
    assert runtime.app.vintage(verra).reversals["L2"].on == date(2036, 2, 2)


def test_period_end_is_recorded_once_on_its_date(runtime: Runtime) -> None:
    vid = issue(runtime)
    for year in (2029, 2034, 2039, 2044, 2049, 2054, 2059, 2061):  # every 5 years at most
        runtime.app.verify(vid, date(year, 1, 1))  # the last: due 2066-01-01, after the period
    assert sweep(runtime, date(2064, 12, 31)).periods_ended == 0
    assert sweep(runtime, date(2065, 6, 1)).periods_ended == 1
    assert sweep(runtime, date(2066, 1, 1)).periods_ended == 0
    assert runtime.app.vintage(vid).period_ended_on == date(2065, 1, 1)
    assert count(runtime, PeriodEnded) == 1
    assert count(runtime, MonitoringLapsed) == 0


def test_default_is_recorded_after_the_surrender_deadline(runtime: Runtime) -> None:
    vid = issue(runtime)
    runtime.app.verify(vid, date(2028, 1, 1))
    runtime.app.record_reversal(vid, date(2028, 3, 1), 1_500, "harvest")
    runtime.app.compensate(vid, "R1", "proponent", 500, date(2028, 6, 1))
    assert sweep(runtime, date(2029, 3, 1)).defaults_recorded == 0  # the deadline day itself
    assert sweep(runtime, date(2029, 3, 2)).defaults_recorded == 1
    assert sweep(runtime, date(2029, 3, 3)).defaults_recorded == 0
    reversal = runtime.app.vintage(vid).reversals["R1"]
    assert reversal.defaulted_on == date(2029, 3, 2)
    assert count(runtime, ProponentDefaulted) == 1
    assert liabilities(runtime.engine, date(2029, 3, 2))["due"] == {"proponent": 0, "pool": 1_000, "fund": 0, "jurisdiction": 0, "insurer": 0}


def test_a_late_sweep_records_what_daily_sweeps_would_have(runtime: Runtime) -> None:
    """After downtime, one sweep records lapse, default and period end, each dated when it arose."""
    vid = issue(runtime, "car-forest", quantity=1_000, buffer=100)  # 100 y, 6 y, 120-day deadline
    result = sweep(runtime, date(2130, 1, 1))
    assert (result.lapses_recorded, result.defaults_recorded, result.periods_ended) == (1, 1, 1)
    v = runtime.app.vintage(vid)
    assert v.reversals["L1"].on == date(2031, 1, 2)
    assert v.reversals["L1"].quantity == 1_100
    assert v.reversals["L1"].defaulted_on == date(2031, 5, 3)
    assert v.period_ended_on == date(2125, 1, 1)
    assert sweep(runtime, date(2130, 1, 1)).to_dict()["lapses_recorded"] == 0


def test_sweep_works_in_chunks_and_an_interrupted_sweep_is_finished_later(runtime: Runtime) -> None:
    ids = [issue(runtime, project=f"P{i}") for i in range(5)]
    calls = iter([False, True])
    partial = sweep(runtime, date(2031, 1, 1), chunk_size=2, should_stop=lambda: next(calls, True))
    assert not partial.complete
    assert partial.lapses_recorded == 2
    rest = sweep(runtime, date(2031, 1, 1), chunk_size=2)
    assert rest.complete and rest.lapses_recorded == 3
    assert count(runtime, MonitoringLapsed) == len(ids)


def test_sweeps_after_the_first_look_only_at_what_can_be_new(runtime: Runtime) -> None:
    """A back-dated issuance after a sweep is still found: its period end, its lapse, its
    reminder, though its due dates fall inside what earlier sweeps already covered."""
    issue(runtime, project="EARLY", on=date(2025, 1, 1))
    assert sweep(runtime, date(2029, 11, 1)).scan == "full"
    assert sweep(runtime, date(2029, 11, 2)).scan == "since-mark"
    due_soon = issue(runtime, project="SOON", on=date(2024, 12, 15))  # verification due 2029-12-15
    old = issue(runtime, project="OLD", on=date(1985, 1, 1), quantity=10, buffer=2)  # period ended 2025
    result = sweep(runtime, date(2029, 11, 3))
    assert result.scan == "since-mark"
    assert (result.lapses_recorded, result.periods_ended) == (1, 1)
    v = runtime.app.vintage(old)
    assert v.reversals["L1"].on == date(1990, 1, 2) and v.period_ended_on == date(2025, 1, 1)
    verification = {r["subject"]: r["due_on"] for r in list_reminders(runtime.engine, [VERIFICATION_DUE])}
    assert verification[due_soon] == "2029-12-15"
    assert sweep(runtime, date(2029, 11, 1)).scan == "full"  # going back in time: look at everything


def test_concurrent_sweeps_record_each_lapse_once(db_url: str) -> None:
    """Two sweeps at once, each with its own runtime (the PostgreSQL case is the point)."""
    with _runtime(db_url) as setup:
        setup.app.issue_many([
            {"program": "icvcm-ccp", "project": f"P{i}", "quantity": 1_000, "buffer": 100 + i,
             "on": date(2025, 1, 1)} for i in range(120)])
    # Runtimes are opened one after the other: opening two at the same instant on
    # PostgreSQL races in eventsourcing's CREATE OR REPLACE FUNCTION (see the report).
    runtimes = [Runtime(Settings(db=db_url)) for _ in range(2)]
    results: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=60)

    def run(rt: Runtime) -> None:
        try:
            barrier.wait()
            results.append(sweep(rt, date(2031, 1, 1), chunk_size=25).lapses_recorded)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(rt,)) for rt in runtimes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rt in runtimes:
        rt.close()
    assert errors == []
    assert sum(results) == 120
    with _runtime(db_url) as rt:
        assert count(rt, MonitoringLapsed) == 120
        assert sweep(rt, date(2031, 1, 1)).lapses_recorded == 0
        assert liabilities(rt.engine, date(2031, 1, 1))["due"]["proponent"] == sum(100 + i for i in range(120))


class _runtime:
    """A runtime as a context manager (tests only)."""

    def __init__(self, url: str) -> None:
        self.rt = Runtime(Settings(db=url))

    def __enter__(self) -> Runtime:
        return self.rt

    def __exit__(self, *_: object) -> None:
        self.rt.close()


# ---------------------------------------------------------------------- reminders


def test_reminders_are_recorded_once_and_queryable(runtime: Runtime) -> None:
    a = issue(runtime, project="A")  # verification due 2030-01-01, risk due 2030-01-01
    issue(runtime, "acr", project="B", on=date(2026, 1, 1), quantity=500, buffer=50)
    first = sweep(runtime, date(2029, 11, 1), reminder_days=90)
    assert first.reminders_raised == 4
    again = sweep(runtime, date(2029, 11, 2), reminder_days=90)
    assert again.reminders_raised == 0
    got = {(r["kind"], r["subject"], r["due_on"]) for r in list_reminders(runtime.engine)}
    assert got == {
        (VERIFICATION_DUE, a, "2030-01-01"),
        (RISK_REASSESSMENT_DUE, "A", "2030-01-01"),
        (STRESS_TEST_DUE, "icvcm-ccp", "2025-01-01"),
        (STRESS_TEST_DUE, "acr", "2026-01-01"),
    }
    stress = list_reminders(runtime.engine, [STRESS_TEST_DUE])
    assert [r["subject"] for r in stress] == ["icvcm-ccp", "acr"]
    assert stress[0]["detail"] == {"interval_years": 5, "last_run": None}
    assert all(r["raised_on"] == "2029-11-01" for r in list_reminders(runtime.engine))
    with runtime.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(reminders)).scalar() == 4


def test_no_verification_reminder_once_the_lapse_has_arisen(runtime: Runtime) -> None:
    issue(runtime)
    sweep(runtime, date(2030, 1, 2), reminder_days=30)
    assert list_reminders(runtime.engine, [VERIFICATION_DUE]) == []
    assert count(runtime, MonitoringLapsed) == 1


# ---------------------------------------------------------------------- the CLI


def test_cli_sweep_and_reminders(db_url: str) -> None:
    with _runtime(db_url) as rt:
        vid = issue(rt)
        rt.app.verify(vid, date(2029, 6, 30))
    runner = CliRunner()
    out = runner.invoke(cli, ["--db", db_url, "sweep", "--as-of", "2034-07-01", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert (data["lapses_recorded"], data["periods_ended"], data["defaults_recorded"]) == (1, 0, 0)
    assert data["as_of"] == "2034-07-01" and "duration_ms" in data and data["reminders_raised"] >= 1
    out = runner.invoke(cli, ["--db", db_url, "reminders", "--kind", STRESS_TEST_DUE, "--json"])
    assert out.exit_code == 0, out.output
    assert [r["subject"] for r in json.loads(out.output)] == ["icvcm-ccp"]
    bad = runner.invoke(cli, ["--db", db_url, "sweep", "--as-of", "2034-13-01"])
    assert bad.exit_code == 2
    bad = runner.invoke(cli, ["--db", db_url, "reminders", "--kind", "nope"])
    assert bad.exit_code == 2


# ---------------------------------------------------------------------- the what-if


def _fingerprint(rt: Runtime) -> tuple[int, int, int]:
    rt.refresh()
    ensure_tables(rt.engine)
    with rt.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(reminders)).scalar()
    return rt.app.recorder.max_notification_id() or 0, rt.projector.position(), int(n or 0)


def test_simulation_plays_the_future_on_a_copy(runtime: Runtime) -> None:
    vid = issue(runtime)
    runtime.app.verify(vid, date(2029, 6, 30))
    issue(runtime, "acr", project="B", quantity=1_000, buffer=200)
    before = _fingerprint(runtime)
    rows = simulate(runtime, date(2030, 1, 1), date(2036, 1, 1), "2y")
    assert [r["as_of"] for r in rows] == ["2030-01-01", "2032-01-01", "2034-01-01", "2036-01-01"]
    assert [r["lapses_recorded"] for r in rows] == [0, 1, 0, 1]
    assert rows[1]["arose"] == {"proponent": 1_200, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert rows[3]["arose"] == {"proponent": 20_000, "pool": 20_000, "fund": 0, "jurisdiction": 0, "insurer": 0}  # lapse, then its default
    assert rows[3]["due"] == {"proponent": 1_200, "pool": 20_000, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert rows[3]["exposure"] == 81_000 and rows[3]["buffer_balance"] == 20_200
    assert _fingerprint(runtime) == before
    assert count(runtime, MonitoringLapsed) == 0
    assert liabilities(runtime.engine, date(2036, 1, 1))["due"] == {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}


def test_simulation_from_settings_and_the_cli(db_url: str) -> None:
    with _runtime(db_url) as rt:
        issue(rt)
        before = _fingerprint(rt)
    rows = simulate(Settings(db=db_url), date(2029, 1, 1), date(2031, 1, 1), "1y")
    assert [r["lapses_recorded"] for r in rows] == [0, 0, 1]  # the lapse arises 2030-01-02
    out = CliRunner().invoke(cli, ["--db", db_url, "simulate", "--from", "2029-01-01",
                                   "--to", "2030-06-01", "--step", "6m", "--json"])
    assert out.exit_code == 0, out.output
    assert [r["as_of"] for r in json.loads(out.output)] == [
        "2029-01-01", "2029-07-01", "2030-01-01", "2030-06-01"]
    bad = CliRunner().invoke(cli, ["--db", db_url, "simulate", "--from", "2030-01-01",
                                   "--to", "2031-01-01", "--step", "1q"])
    assert bad.exit_code == 2
    with _runtime(db_url) as rt:
        assert _fingerprint(rt) == before


def test_steps_are_calendar_steps() -> None:
    assert schedule(date(2024, 1, 31), date(2024, 4, 30), Step.parse("1m")) == [
        date(2024, 1, 31), date(2024, 2, 29), date(2024, 3, 31), date(2024, 4, 30)]
    assert schedule(date(2024, 2, 29), date(2026, 1, 1), Step.parse("1y")) == [
        date(2024, 2, 29), date(2025, 2, 28), date(2026, 1, 1)]
    with pytest.raises(ValueError):
        Step.parse("0y")


# ---------------------------------------------------------------------- leader locks


def test_file_leader_lock_admits_one_holder(tmp_path: Path) -> None:
    store = parse_store(str(tmp_path / "ledger.db"))
    first, second = lock_for(store), lock_for(store)
    assert isinstance(first, FileLeaderLock)
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    assert not first.try_acquire()
    second.release()


def test_advisory_leader_lock_admits_one_holder_per_schema(pg_url: str) -> None:
    store = parse_store(pg_url)
    other = parse_store(pg_url.rsplit("=", 1)[0] + "=elsewhere")
    first, second, elsewhere = lock_for(store), lock_for(store), lock_for(other)
    assert isinstance(first, AdvisoryLeaderLock)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        assert elsewhere.try_acquire()  # another ledger on the same server elects on its own
        assert first.still_held()
        first.release()
        assert second.try_acquire()
    finally:
        for lock in (first, second, elsewhere):
            lock.release()
