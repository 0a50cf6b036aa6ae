"""One fold from events to vintages, and one way to create the ledger's tables.

Every path that turns events into a vintage (the repository, the fold over a stream, the
as-of replay, the export's replayer) must agree; two processes opening a new ledger at
the same moment must both succeed, with the tables made once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import closing
from datetime import date, timedelta

from sqlalchemy import func, select

from ledger.replay import fold_stream, replay
from permanence.config import Settings
from permanence.runtime import Runtime
from projections.export import Replayer, log_records
from projections.storage.schema import FINGERPRINT, VERSION_TABLE, fingerprint, meta
from tests.support import REPO

DAYS = [date(2021, 1, 4), date(2022, 6, 1), date(2024, 3, 2), date(2030, 1, 1), date(2199, 1, 1)]


def _history(rt: Runtime) -> str:
    app = rt.app
    vid = app.issue(program="verra-vcs", project="FOLD-1", vintage_year=2020, quantity=1000,
                    buffer=200, on=date(2021, 1, 4))
    app.verify(vid, date(2022, 6, 1))
    app.record_reversal(vid, date(2023, 5, 5), 120, "wildfire")
    app.retire(vid, 300, date(2024, 3, 2))
    app.cancel(vid, 50, date(2024, 4, 1), "double counted")
    app.note(vid, "a site visit, recorded late", date(2022, 1, 10))  # dated before three others
    return vid


def test_every_path_folds_events_to_the_same_vintage(runtime: Runtime) -> None:
    vid = _history(runtime)
    stream = runtime.app.stream(vid)
    from_repository = runtime.app.vintage(vid)
    folded = fold_stream(stream)
    replayed, trail = replay(stream)
    exported = Replayer()
    for record in log_records(runtime.app):
        exported.apply(record)
    from_export = exported.vintages[vid]
    assert folded is not None and replayed is not None
    assert [e["version"] for e in trail] == [e.originator_version for e in stream]
    for v in (folded, replayed, from_export):
        assert v.version == from_repository.version == len(stream)
        for day in DAYS:
            assert v.summary(day) == from_repository.summary(day)


def test_a_replay_as_of_a_date_leaves_out_later_events_and_takes_the_last_version(
    runtime: Runtime,
) -> None:
    vid = _history(runtime)
    stream = runtime.app.stream(vid)
    for day in DAYS:
        visible = [e for e in stream if e.on <= day]
        vintage, trail = replay(stream, as_of=day)
        assert vintage is not None
        assert [e["version"] for e in trail] == [e.originator_version for e in visible]
        assert vintage.version == visible[-1].originator_version  # also past a gap
        # the same state as the repository's vintage at that version, where no event is
        # left out of the sequence before it
        if [e.originator_version for e in visible] == list(range(1, len(visible) + 1)):
            at = runtime.app.vintage(vid, version=len(visible))
            assert vintage.summary(day) == at.summary(day)
    assert replay(stream, as_of=date(2021, 1, 4) - timedelta(days=1))[0] is None
    gapped = [e.originator_version for e in stream if e.on <= date(2022, 6, 1)]
    assert gapped != list(range(1, len(gapped) + 1))  # the history does exercise a gap


START = """
import sys
from permanence.config import Settings
from permanence.runtime import Runtime
Runtime(Settings(db=sys.argv[1])).close()
"""


def test_two_processes_opening_a_new_ledger_at_once_both_succeed(db_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH")) if p)}
    started = [subprocess.Popen([sys.executable, "-c", START, db_url], env=env,
                                stderr=subprocess.PIPE) for _ in range(3)]
    errors = [(p.wait(timeout=300), p.stderr.read().decode() if p.stderr else "") for p in started]
    assert [code for code, _ in errors] == [0, 0, 0], errors
    with _closing(db_url) as rt, rt.engine.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT count(*) FROM {VERSION_TABLE}").scalar() == 1
        stamped = conn.execute(select(meta.c.value).where(meta.c.name == FINGERPRINT)).scalar()
        assert stamped == fingerprint(conn.dialect)
        assert conn.execute(select(func.count()).select_from(meta)).scalar() == 1


def _closing(url: str) -> closing[Runtime]:
    return closing(Runtime(Settings(db=url)))


def test_dropped_read_models_are_rebuilt_on_the_next_start(db_url: str) -> None:
    with _closing(db_url) as rt:
        vid = _history(rt)
        rt.projector.drop_tables()
    with _closing(db_url) as rt:
        assert rt.projector.lag() == 0
        with rt.engine.connect() as conn:
            version = conn.exec_driver_sql(
                "SELECT version FROM proj_vintages WHERE vintage_id = "
                + ("?" if conn.dialect.name == "sqlite" else "%s"), (vid,)).scalar()
        assert version == len(rt.app.stream(vid))

