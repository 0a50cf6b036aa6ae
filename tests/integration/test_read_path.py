"""Read commands answer from the read models without loading the write side, and only when
the read models hold every recorded event; otherwise the whole runtime catches them up first."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date

from sqlalchemy import text

from permanence.config import Settings
from permanence.runtime import LOG_HEAD, Runtime, _caught_up, read_engine
from projections.queries import Filters, liabilities

WRITE_SIDE = ("ledger.application", "ledger.vintage", "ledger.events", "eventsourcing.sqlite",
              "eventsourcing.postgres", "projections.projector")

PROBE = """
import json, sys
from permanence.cli.main import main
sys.argv = ["permanence", "--db", sys.argv[1], "liabilities", "--as-of", "2030-01-01", "--json"]
try:
    main()
except SystemExit as e:
    assert not e.code, e.code
print(json.dumps(sorted(m for m in sys.modules if m.startswith(WRITE_SIDE))), file=sys.stderr)
""".replace("WRITE_SIDE", repr(WRITE_SIDE))


def _issue(rt: Runtime, quantity: int) -> str:
    return rt.app.issue(program="icvcm-ccp", project="P-1", vintage_year=2020,
                        quantity=quantity, buffer=quantity // 5, on=date(2021, 1, 1))


def test_the_log_head_query_agrees_with_the_recorder(db_url: str) -> None:
    rt = Runtime(Settings(db=db_url))
    try:
        for q in (1_000, 2_000, 3_000):
            _issue(rt, q)
        with rt.engine.connect() as conn:
            head = conn.exec_driver_sql(LOG_HEAD[rt.engine.dialect.name]).scalar()
        assert head == rt.app.recorder.max_notification_id() and head >= 3
    finally:
        rt.close()


def test_a_caught_up_ledger_is_read_without_the_write_side(db_url: str) -> None:
    rt = Runtime(Settings(db=db_url))
    try:
        _issue(rt, 1_000)
        assert _caught_up(rt.engine)
    finally:
        rt.close()
    probe = subprocess.run([sys.executable, "-c", PROBE, db_url], capture_output=True, text=True,
                           timeout=120, check=False)
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stderr.strip().splitlines()[-1]) == []
    assert json.loads(probe.stdout)["exposure"] == 1_000  # the issued credits, in 2030


def test_a_ledger_with_unprojected_events_is_caught_up_before_it_is_read(db_url: str) -> None:
    """Events recorded by a process that did not project them (a crash after the save, say)
    are in the answer: the read path falls back to the runtime, which catches up first."""
    writer = Runtime(Settings(db=db_url), catch_up_on_write=False)
    try:
        _issue(writer, 1_000)
        writer.refresh()
        _issue(writer, 4_000)  # recorded, not projected
        assert not _caught_up(writer.engine)
        with writer.engine.connect() as conn:
            projected = conn.execute(text("SELECT count(*) FROM proj_vintages")).scalar()
        assert projected == 1
    finally:
        writer.close()
    with read_engine(Settings(db=db_url)) as engine:
        both = liabilities(engine, date(2030, 1, 1), Filters())
        assert _caught_up(engine)
    alone = 1_000 + 4_000
    assert both["exposure"] == alone
