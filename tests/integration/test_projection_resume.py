"""A projection process killed mid-run resumes without double counting."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from datetime import date, timedelta
from pathlib import Path

import pytest

import projections.projector as projector_module
from ledger.application import LedgerApp
from permanence.config import Settings
from permanence.runtime import Runtime
from projections.first_pass import Job, Worker, WorkerFailed
from projections.queries import buffer, liabilities
from projections.second_pass import ReplayJob
from risk.service import record_stress_test
from tests.support import poison, table_rows

WORKER = textwrap.dedent(
    """
    import sys, time
    from permanence.config import Settings
    from permanence.runtime import Runtime
    rt = Runtime(Settings(db=sys.argv[1]), catch_up_on_write=False)
    rt.projector.page_size = 37
    while rt.projector.catch_up(max_pages=1):
        print(rt.projector.position(), flush=True)
        time.sleep(0.005)
    print("done", flush=True)
    """
)


def test_kill_mid_run_then_resume_equals_rebuild(db_url: str) -> None:
    writer = Runtime(Settings(db=db_url), catch_up_on_write=False)
    try:
        specs = [
            {"program": "icvcm-ccp" if i % 2 else "carb-forest", "project": f"P{i % 17}",
             "vintage_year": 2020 + i % 5, "quantity": 1_000 + i, "buffer": 100 + i % 50,
             "on": date(2025, 1, 1) + timedelta(days=i % 400)}
            for i in range(600)
        ]
        ids = writer.app.issue_many(specs)
        for i, vid in enumerate(ids[:150]):
            writer.app.record_reversal(vid, date(2027, 1, 1) + timedelta(days=i), 50, "storm")
            writer.app.compensate(vid, "R1", "buffer", 20, date(2027, 6, 1) + timedelta(days=i))
        total_events = writer.app.recorder.max_notification_id()
    finally:
        writer.close()
    assert total_events == 900

    proc = subprocess.Popen([sys.executable, "-c", WORKER, db_url], stdout=subprocess.PIPE,
                            text=True, env={**os.environ})
    assert proc.stdout is not None
    seen = 0
    for line in proc.stdout:
        if line.strip() == "done":
            break
        seen = int(line)
        if seen >= 300:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=30)
    assert 300 <= seen < total_events, "the worker must be killed part-way"

    rt = Runtime(Settings(db=db_url), catch_up_on_write=False)
    try:
        assert seen <= rt.projector.position() < total_events
        rt.projector.catch_up()
        assert rt.projector.position() == total_events
        resumed = table_rows(rt)
        day = date(2030, 1, 1)
        figures = (liabilities(rt.engine, day), buffer(rt.engine, day))
        assert figures[0]["exposure"] == sum(s["quantity"] for s in specs)
        assert figures[0]["due"]["pool"] == 150 * 30
        assert figures[1]["cancelled"] == 150 * 20
        rt.projector.rebuild()
        assert table_rows(rt) == resumed
    finally:
        rt.close()


def test_a_failed_rebuild_leaves_the_read_models_as_they_were(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuild is one transaction: a failure part-way rolls back the drop as well."""
    rt = Runtime(Settings(db=db_url))
    try:
        ids = rt.app.issue_many([
            {"program": "icvcm-ccp", "project": f"P{i}", "quantity": 100 + i, "buffer": 10,
             "on": date(2025, 1, 1) + timedelta(days=i)}
            for i in range(20)
        ])
        rt.app.record_reversal(ids[0], date(2027, 1, 1), 30, "storm")

        def fail(*_: object) -> None:
            raise RuntimeError("disk full")

        _fails_and_leaves_the_tables(rt, monkeypatch, "write_rollups", fail, RuntimeError,
                                     "disk full")
    finally:
        rt.close()


def _fails_and_leaves_the_tables(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch, name: str, replacement: object,
    error: type[Exception], match: str,
) -> None:
    """With the projector's ``name`` replaced, a rebuild fails with ``error`` and leaves the
    read models and their position as they were; without, it succeeds with the same."""
    before = table_rows(rt)
    position = rt.projector.position()
    monkeypatch.setattr(projector_module, name, replacement)
    with pytest.raises(error, match=match):
        rt.projector.rebuild()
    assert table_rows(rt) == before
    assert rt.projector.position() == position
    monkeypatch.undo()
    assert rt.projector.rebuild() == position
    assert table_rows(rt) == before


def test_a_failed_replay_worker_leaves_the_read_models_as_they_were(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second-pass worker that cannot do its share fails the rebuild with its own error,
    after the first pass has already written rows, and rolls it all back."""
    rt = Runtime(Settings(db=sqlite_url))
    try:
        _busy_log(rt.app)
        rt.refresh()
        rt.projector.parallel_replay_from = 1
        _fails_and_leaves_the_tables(
            rt, monkeypatch, "ReplayJob",
            lambda ledger, *rest: ReplayJob(f"{ledger}.missing", *rest),
            WorkerFailed, "unable to open database file")
    finally:
        rt.close()


def test_rebuild_replays_interleaved_streams_as_the_log_does(runtime: Runtime) -> None:
    """A rebuild takes later events vintage by vintage; the tables must not show it.

    Events of many vintages interleave in the log (yearly verifications, reversals and
    compensations across vintages), and a stress-test record (another kind of aggregate)
    sits among them.
    """
    app = runtime.app
    ids = app.issue_many([
        {"program": "icvcm-ccp" if i % 3 else "carb-forest", "project": f"P{i % 4}",
         "quantity": 1_000 + i, "buffer": 100, "on": date(2025, 1, 1)}
        for i in range(12)
    ])
    for year in range(2026, 2030):
        for project in ("P0", "P1", "P2", "P3"):
            app.verify_project(project, date(year, 3, 1))
        app.record_reversal(ids[year - 2026], date(year, 6, 1), 50, "storm")
        app.compensate(ids[year - 2026], "R1", "buffer", 20, date(year, 9, 1))
    record_stress_test(app, "carb-forest", date(2029, 1, 1), {"model": "independent"},
                       {"p_exhausted": 0.01})
    app.retire(ids[5], 30, date(2030, 1, 1))
    runtime.refresh()
    incremental = table_rows(runtime)
    assert len(incremental["proj_deltas"]) >= 8  # each reversal and compensation moves figures
    assert runtime.projector.rebuild() == app.recorder.max_notification_id()
    assert table_rows(runtime) == incremental


def _busy_log(app: LedgerApp) -> None:
    """Issuances, then later events of many vintages interleaved, and another aggregate."""
    ids = app.issue_many([
        {"program": "icvcm-ccp" if i % 3 else "carb-forest", "project": f"P{i % 4}",
         "quantity": 1_000 + i, "buffer": 100, "on": date(2025, 1, 1) + timedelta(days=i)}
        for i in range(40)
    ])
    for year in range(2026, 2029):
        app.verify_project("P1", date(year, 3, 1))
        app.record_reversal(ids[year - 2026], date(year, 6, 1), 50, "storm")
        app.compensate(ids[year - 2026], "R1", "buffer", 20, date(year, 9, 1))
    record_stress_test(app, "carb-forest", date(2029, 1, 1), {"model": "independent"},
                       {"p_exhausted": 0.01})
    app.issue_many([{"program": "acr", "project": "late", "quantity": 500, "buffer": 50,
                     "on": date(2029, 1, 1)}])
    app.retire(ids[5], 30, date(2030, 1, 1))


def test_a_first_pass_shared_among_processes_equals_incremental(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large SQLite rebuild reads the log in worker processes; the tables must not show it.

    Three workers take uneven shares of a log whose later events interleave; their scratch
    files are gone afterwards. The ledger's file name holds characters a URL would misread.
    """
    sqlite_url = str(tmp_path / "ledger #1? %20.db")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    started: list[Worker] = []
    monkeypatch.setattr(projector_module, "Worker", lambda log: started.append(Worker(log)) or started[-1])
    rt = Runtime(Settings(db=sqlite_url))
    try:
        _busy_log(rt.app)
        rt.refresh()
        incremental = table_rows(rt)
        rt.projector.parallel_from, rt.projector.rebuild_workers = 1, 3
        assert rt.projector.rebuild() == rt.app.recorder.max_notification_id()
        assert _kinds(started) == [[Job]] * 3, "the first pass must have run in three processes"
        assert table_rows(rt) == incremental
        assert list(scratch.iterdir()) == []
        with rt.engine.connect() as conn:  # nothing left attached to the pooled connection
            assert [r[1] for r in conn.exec_driver_sql("PRAGMA database_list")] == ["main"]
    finally:
        rt.close()


def _kinds(started: list[Worker]) -> list[list[type]]:
    """The kinds of share each worker was given, in order."""
    return [[type(job) for job in w.jobs] for w in started]


def test_a_second_pass_shared_among_processes_equals_incremental(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streams with later events are replayed in worker processes too; the tables, the
    roll-ups and the recorded failures must not show it, and the scratch files are gone.

    The log interleaves later events of many vintages, holds another kind of aggregate,
    and an event no vintage can apply (its stream's failure is recorded as the log's is).
    """
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    started: list[Worker] = []
    monkeypatch.setattr(projector_module, "Worker", lambda log: started.append(Worker(log)) or started[-1])
    rt = Runtime(Settings(db=str(tmp_path / "ledger.db")))
    try:
        _busy_log(rt.app)
        ids = [str(v) for v in rt.app.issue_many([
            {"program": "verra-vcs", "project": f"Q{i % 3}", "quantity": 700 + i, "buffer": 120,
             "on": date(2026, 2, 1)} for i in range(9)])]
        rt.app.record_reversal(ids[4], date(2027, 2, 1), 40, "wildfire")
        bad = poison(rt, ids[7])
        rt.app.verify_project("Q0", date(2027, 3, 1))
        rt.refresh()
        incremental = table_rows(rt)
        failed = [(f["nid"], f["vintage_id"]) for f in rt.projector.failures()]
        assert failed[0] == (bad, ids[7]) and len(incremental["proj_deltas"]) >= 8
        rt.projector.parallel_replay_from, rt.projector.rebuild_workers = 1, 3
        assert rt.projector.rebuild() == rt.app.recorder.max_notification_id()
        # this process replays a share too
        assert _kinds(started) == [[ReplayJob]] * 2, "the second pass must have run in three processes"
        assert table_rows(rt) == incremental
        assert [(f["nid"], f["vintage_id"]) for f in rt.projector.failures()] == failed
        assert list(scratch.iterdir()) == []
        started.clear()
        rt.projector.parallel_from = 1  # both passes shared out
        rt.projector.rebuild()
        assert _kinds(started) == [[Job, ReplayJob]] * 3  # the same processes serve both
        assert table_rows(rt) == incremental
    finally:
        rt.close()


def test_a_failed_worker_leaves_the_read_models_as_they_were(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker process that fails fails the rebuild, with its own error, and rolls it back."""
    rt = Runtime(Settings(db=sqlite_url))
    try:
        _busy_log(rt.app)
        rt.refresh()
        rt.projector.parallel_from = 1
        _fails_and_leaves_the_tables(rt, monkeypatch, "insert_sql",
                                     lambda mark: "INSERT INTO nowhere VALUES (?)", WorkerFailed,
                                     "no such table: nowhere")
    finally:
        rt.close()
