"""Issue 17: the verification history an import implies, recorded without one event per pair.

Each issuance of a project implies the project was verified by then, so every earlier vintage
of it was. Recording only the verifications that change what a vintage's verifications say
must give the very figures that recording every implied verification gives: the reference
here is a ledger into which the same files are imported with every pair recorded (as the
importer did before, written out in this test), and the two ledgers are compared
vintage by vintage after a sweep, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ledger.calendar import add_years
from ledger.profiles import ProfileCatalog
from ledger.vintage import Vintage
from permanence.config import Settings
from permanence.imports.loader import import_file
from permanence.runtime import Runtime
from projections.queries import Filters, liabilities
from projections.tables import vintages
from scheduler.sweep import sweep
from tests.support import PG_BASE, pg_connect, require_postgres, shared_data

TODAY = date(2199, 12, 31)


def every_one(self: Vintage, issuances: Sequence[date], today: date) -> list[date]:
    """The reference: every verification the issuances imply, one per vintage and later
    issuance of its project, as the importer recorded them before issue 17."""
    if not self.reversible or self.period_closed:
        return []
    return [d for d in issuances if self.issued_on < d < self.period_end and d <= today
            and d not in self.verifications]


def write_dense_acr(path: Path, projects: int, seed: int) -> date:
    """An ACR export whose forest projects issue often, with the odd gap of years (so some
    vintages lapse and are cured); returns the last issuance date."""
    sample = shared_data("registry-exports", "american-carbon-registry", "issuances.csv")
    with sample.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle))
    rng = random.Random(seed)
    last = date(2000, 1, 1)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for p in range(projects):
            day = date(2001, 1, 1) + timedelta(days=rng.randrange(0, 400))
            for n in range(rng.randrange(4, 16)):
                day += timedelta(days=rng.choice((20, 45, 90, 200, 365, 700, 1900, 2300)))
                last = max(last, day)
                quantity = 1_000 + rng.randrange(0, 50_000)
                row = dict.fromkeys(header, "")
                row.update({
                    "Date Issued (GMT)": f"{day.month}/{day.day}/{day.year} 10:00:{n:02d} AM",
                    "Vintage": str(day.year - 1),
                    "ReportingPeriodBegin": f"1/1/{day.year - 1}",
                    "ReportingPeriodEnd": f"12/31/{day.year - 1}",
                    "Total Credits Issued": str(quantity + quantity // 5),
                    "Credits Issued to Project": str(quantity),
                    "Credits Issued to Buffer Pool": str(quantity // 5),
                    "Credits Transferred to Buffer Pool": "0",
                    "Project ID": f"ACR9{p:03d}",
                    "Project Name": f"Dense Forest {p}",
                    "Project Type": "Forest Carbon",
                    "Project Crediting Period Start Date": "1/1/2000",
                })  # fmt: skip
                writer.writerow(row)
    return last


@pytest.fixture(params=["sqlite", "postgres"])
def two_ledgers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty ledgers on one backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "fewer.db"), str(tmp_path / "every.db")
        return
    require_postgres()
    schemas = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    conn: Any = pg_connect()
    for schema in schemas:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?schema={schemas[0]}", f"{PG_BASE}?schema={schemas[1]}"
    finally:
        for schema in schemas:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


def _import_all(rt: Runtime, files: list[tuple[str, Path]], folder: Path) -> int:
    recorded = 0
    for n, (fmt, path) in enumerate(files):
        summary = import_file(rt, fmt, path, rejects=folder / f"rejects-{n}.csv")
        assert summary.rejected == 0, summary.rejects
        recorded += summary.verifications
    sweep(rt, TODAY)
    return recorded


def _figures(rt: Runtime, days: list[date]) -> dict[str, Any]:
    """Every vintage's lapses, due date and summary at each day (its event count aside),
    and the liabilities by project."""
    with rt.engine.connect() as conn:
        ids = sorted(row[0] for row in conn.execute(select(vintages.c.vintage_id)))
    out: dict[str, Any] = {}
    for vid in ids:
        v = rt.app.vintage(vid)
        out[vid] = {
            "lapses": v.expected_lapses(),
            "last_verified": v.last_verified,
            "due": v.verification_due,
            "show": [{k: x for k, x in rt.app.show(vid, d).items() if k != "version"}
                     for d in days],
        }
    out["liabilities"] = [liabilities(rt.engine, d, Filters()) for d in days]
    out["by project"] = [liabilities(rt.engine, d, Filters(), by="project") for d in days]
    return out


def test_recording_the_decisive_verifications_gives_every_figure_recording_all_gives(
    two_ledgers: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dense = tmp_path / "dense.csv"
    last = write_dense_acr(dense, projects=30, seed=17)
    files = [
        ("acr", shared_data("registry-exports", "american-carbon-registry", "issuances.csv")),
        ("acr", dense),  # a second file: its evidence meets verifications already recorded
        ("car", shared_data("registry-exports", "climate-action-reserve", "issuances.csv")),
    ]
    days = [last, last + timedelta(days=1), last + timedelta(days=2_500), TODAY]
    fewer_url, every_url = two_ledgers

    fewer = Runtime(Settings(db=fewer_url))
    try:
        fewer_count = _import_all(fewer, files, tmp_path)
        mine = _figures(fewer, days)
    finally:
        fewer.close()

    monkeypatch.setattr(Vintage, "verifications_implied_by", every_one)
    every = Runtime(Settings(db=every_url))
    try:
        every_count = _import_all(every, files, tmp_path)
        theirs = _figures(every, days)
    finally:
        every.close()

    assert 0 < fewer_count < every_count
    assert any(f["lapses"] for k, f in theirs.items() if k not in ("liabilities", "by project"))
    assert mine.keys() == theirs.keys()
    for key in theirs:
        assert mine[key] == theirs[key], key


def test_a_decade_of_monthly_issuances_implies_a_handful_of_verifications() -> None:
    """A vintage verified by issuances every month for a decade, then after a gap of years:
    a handful are recorded, among them the cure of the lapse the gap causes and the last,
    not one per month."""
    catalog = ProfileCatalog.load()
    profile = catalog.get("acr")
    interval = profile.verification_interval_years.value
    assert interval is not None
    issued = date(2001, 1, 1)
    v = Vintage.issue(vintage_id=uuid.uuid4(), program=profile.name, pool=profile.pool_name,
                      project="P", quantity=1_000, buffer=200, on=issued, rules=profile.rules(),
                      enforce_minimum_buffer=False)
    monthly = [date(2001 + n // 12, n % 12 + 1, 15) for n in range(1, 120)]
    cure = add_years(monthly[-1], interval) + timedelta(days=profile.grace_days.value + 30)
    implied = [*monthly, cure, cure + timedelta(days=31)]
    chosen = v.verifications_implied_by(implied, TODAY)
    assert len(every_one(v, implied, TODAY)) == len(implied)
    assert len(chosen) <= 2 * (10 // interval + 1) + 2
    assert cure in chosen and max(chosen) == max(implied)
