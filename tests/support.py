"""Helpers the test modules share: paths, PostgreSQL, a real HTTP server, ledgers and files
several suites build. Fixtures live in ``conftest.py``; everything else shared lives here."""

from __future__ import annotations

import csv
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import select, text

from ledger import events as ev
from ledger.application import vintage_id_for
from permanence.imports import PARSERS
from permanence.imports.records import IssuanceRecord
from permanence.runtime import Runtime
from projections.tables import deltas, rollup, rollup_year, tracking, vintages

# The scenarios run over decades: fix "today" past them (PERMANENCE_TODAY is the setting a
# demo or a test uses for that). Tests of the no-future rule set their own today.
os.environ.setdefault("PERMANENCE_TODAY", "2199-12-31")
PG_BASE = os.environ.get("PERMANENCE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
SHARED = REPO.parent / "shared"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def pg_connect() -> object:
    import psycopg

    return psycopg.connect(PG_BASE.replace("postgresql+psycopg://", "postgresql://"),
                           connect_timeout=3, autocommit=True)


def postgres_reason() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        conn = pg_connect()
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        return f"PostgreSQL not reachable at {PG_BASE}: {e}"
    conn.close()  # type: ignore[attr-defined]
    return None


_PG_REASON = postgres_reason()


def require_postgres() -> None:
    if _PG_REASON is None:
        return
    if os.environ.get("PERMANENCE_REQUIRE_POSTGRES") == "1":
        pytest.fail(_PG_REASON)
    pytest.skip(_PG_REASON)


def shared_data(*parts: str) -> Path:
    """A file under ../shared/data, or skip: those files are never part of the project."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared is not beside this checkout)")
    return path


STARTUP_DEADLINE = 30.0  # seconds allowed for a server to come up (not asserted on)


@dataclass
class Ledger:
    a: str
    b: str
    known_after_a: str  # record time of A's issuance: B and the reversals came later


def build_ledger(rt: Runtime) -> Ledger:
    app = rt.app
    a = app.issue(program="icvcm-ccp", project="Mangrove A", quantity=80_000, buffer=20_000,
                  on=date(2025, 1, 1), vintage_year=2024)
    known_after_a = app.stream(a)[0].timestamp.isoformat()
    b = app.issue(program="car-forest", project="Forest B", quantity=10_000, buffer=2_000,
                  on=date(2026, 3, 1), vintage_year=2025)
    app.retire(a, 30_000, date(2026, 1, 1))
    fire = app.record_reversal(b, date(2027, 6, 1), 1_500, "wildfire")
    assert fire == {"reversal_id": "R1", "classification": "unavoidable"}
    app.compensate(b, "R1", "buffer", 1_500, date(2027, 7, 1))
    harvest = app.record_reversal(a, date(2028, 2, 1), 1_000, "harvest")
    assert harvest == {"reversal_id": "R1", "classification": "avoidable"}
    return Ledger(a, b, known_after_a)


@contextmanager
def running(app: FastAPI) -> Iterator[httpx.Client]:
    """Serve ``app`` with a real uvicorn server on a free loopback port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_DEADLINE
    while not srv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the HTTP server did not start")
        time.sleep(0.05)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            yield client
    finally:
        srv.should_exit = True
        thread.join()
        sock.close()


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


ACR_HEADER = (FIXTURES / "imports" / "acr_issuances.csv").read_text(encoding="utf-8-sig").splitlines()[0]


def acr_row(i: int) -> str:
    project = 1_000 + (i * 37) % 9_000
    buffer = (i * 13) % 500
    return (
        f"{1 + i % 12}/{1 + i % 28}/2025 4:05:06 PM,2024,1/1/2024,12/31/2024,{project + buffer},"
        f"{project},{buffer},0,Example Developer,ACRF{i:06d},Forest {i},Forest Carbon,"
        "Example Methodology,Version 1.0,Example Verifier,Springfield,OHIO,US,No,No,,1/1/2020,,"
        "13: Climate Action,,View,"
    )


def write_acr_file(path: Path, n: int) -> list[str]:
    """An ACR export of ``n`` distinct issuances; returns their vintage ids in file order."""
    path.write_text("\n".join([ACR_HEADER, *(acr_row(i) for i in range(n))]) + "\n",
                    encoding="utf-8")
    records = [r for r in PARSERS["acr"](path) if isinstance(r, IssuanceRecord)]
    assert len(records) == n
    return [vintage_id_for(r.program, r.source_key) for r in records]


def data_rows(path: Path) -> dict[int, list[str]]:
    """Each non-blank data row of ``path`` by the line it starts on, read independently."""
    rows: dict[int, list[str]] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        next(reader)
        start = reader.line_num + 1
        for cells in reader:
            if any(cell.strip() for cell in cells):
                rows[start] = cells
            start = reader.line_num + 1
    return rows


def table_rows(runtime: Runtime) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    with runtime.engine.connect() as conn:
        for t, order in ((vintages, vintages.c.vintage_id), (deltas, deltas.c.nid),
                         (rollup, text("measure, key, day, program, pool")),
                         (rollup_year, text("measure, key, year, program, pool")),
                         (tracking, tracking.c.name)):
            out[t.name] = [tuple(r) for r in conn.execute(select(t).order_by(order, *(
                [deltas.c.seq] if t is deltas else [])))]
    return out


def poison(rt: Runtime, vid: str) -> int:
    """Record, bypassing every check, an event no vintage can apply (it settles a reversal
    that does not exist), as a faulty older release or a hand edit might have."""
    event = ev.Compensated(originator_id=UUID(vid), originator_version=2,
                           timestamp=datetime.now(UTC), on=date(2021, 1, 1), reversal_id="R9",
                           route="buffer", quantity=5)
    rt.app.recorder.insert_events([rt.app.mapper.to_stored_event(event)])
    return rt.app.recorder.max_notification_id() or 0
