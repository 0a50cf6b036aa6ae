"""Issue 14 and issue 15 item 3: imports that tell the truth about permanence.

Each expected figure is worked out here from the fixture's own rows (written in the test, not
taken from the importer): only credits that can reverse are exposed, CARB's ``Buffer Pool
Retired`` column is what leaves the pool whatever the comment says, a repeated key with other
figures is a conflict, and one bad row never stops the rows after it.
"""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

from typer.testing import CliRunner

from permanence.cli.main import app
from permanence.imports import IssuanceRecord
from permanence.imports.loader import Loader, PreparedFile, import_file
from permanence.runtime import Runtime
from projections.consistency import serial_findings, serial_ranges
from projections.queries import Filters, buffer, liabilities
from scheduler.sweep import sweep
from tests.support import FIXTURES, shared_data

IMPORTS = FIXTURES / "imports"


def test_carb_phrasings_the_column_is_the_quantity_and_the_pool_reconciles(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = IMPORTS / "carb_phrasings.csv"
    summary = import_file(runtime, "carb", path, rejects=tmp_path / "r.csv")
    assert summary.rejected == 0, summary.rejects
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    forest = [r for r in rows if r["Project Type"] == "Forest" and r["Vintage"]]
    contributed = sum(int(float(r["Forest Buffer Account Contribution"])) for r in forest)
    retired = sum(int(float(r["Buffer Pool Retired"] or 0)) for r in rows)
    late = date(2024, 1, 1)
    pool = buffer(runtime.engine, late, "carb-forest")
    assert pool["contributions"] == contributed
    assert pool["balance"] == contributed - retired  # every retired credit left the pool
    # only Forest credits are exposed; the ODS issuance counts as issued, not exposed
    exposure = sum(int(float(r["ARB Offset Credits Issued"])) for r in forest)
    assert liabilities(runtime.engine, late, Filters(program="carb-forest"))["exposure"] == exposure
    ods = sum(int(float(r["ARB Offset Credits Issued"])) for r in rows if r["Project Type"] == "ODS")
    assert summary.non_reversible == ods
    # the reversal of another project, not in the file, and the unread comment are findings
    assert any("CAFR7777-A" in f for f in summary.findings)
    assert any("line 5" in f and "names no reversal" in f for f in summary.findings)
    assert summary.unexplained == {} and not summary.failed


def test_a_conflict_and_a_bad_row_are_rejected_and_the_rest_imports(
    runtime: Runtime, tmp_path: Path
) -> None:
    summary = import_file(runtime, "acr", IMPORTS / "acr_conflicts.csv", rejects=tmp_path / "r.csv")
    reasons = {r.line: r.reason for r in summary.rejects}
    assert set(reasons) == {3, 4}
    assert "conflicts with line 2" in reasons[3] and "4800" in reasons[3] and "4000" in reasons[3]
    assert "'Vintage'" in reasons[4]
    assert summary.kinds["issuance"].imported == 2  # line 2 and line 5, after the bad row
    assert summary.kinds["issuance"].duplicates == 0
    assert any("'Mystery Type'" in f for f in summary.findings)  # unknown: default + finding
    # an unreadable row states no figure; the conflict is explained by its rejection
    assert summary.tonnes["issued"]["file"] == 4000 + 4800 + 700
    assert summary.unexplained == {}


def test_a_row_the_store_refuses_is_rejected_not_fatal(runtime: Runtime, tmp_path: Path) -> None:
    """A vintage of 10^30 that got past a parser: the ledger refuses it, the next row imports."""

    def record(line: int, key: str, year: int) -> IssuanceRecord:
        return IssuanceRecord(
            line, "acr", key, f"P{line}", None, year, None, None, date(2025, 1, 2), 10, 0, 10,
            None, None, None, None, None, "Landfill Gas", None, None,
        )

    records = [record(2, "huge", 10**30), record(3, "fine", 2024)]
    source = tmp_path / "rows.csv"
    source.write_text("Project ID\nP2\nP3\n", encoding="utf-8")
    prepared = PreparedFile("acr", source, 2, iter(records))
    summary = Loader(runtime.app).run(prepared)
    assert [r.line for r in summary.rejects] == [2]
    assert summary.kinds["issuance"].imported == 1


def test_an_import_whose_rows_are_all_rejected_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    lines = (IMPORTS / "acr_conflicts.csv").read_text(encoding="utf-8").splitlines()
    bad.write_text("\n".join([lines[0], lines[3]]) + "\n", encoding="utf-8")
    out = CliRunner().invoke(app, ["--db", str(tmp_path / "l.db"), "import", "acr", str(bad)])
    assert out.exit_code == 1, out.output
    assert "1 rejected" in out.output


def test_older_acr_shape_reads_two_digit_years_against_the_issuance_year(
    runtime: Runtime, tmp_path: Path
) -> None:
    summary = import_file(runtime, "acr", IMPORTS / "acr_2021_shape.csv", rejects=tmp_path / "r.csv")
    assert [r.line for r in summary.rejects] == [5]  # 2/7/14 is not in its Issuance Year 2015
    assert summary.kinds["issuance"].imported == 2
    assert summary.non_reversible == 3000  # industrial gas substitution cannot reverse


def test_car_cancellation_for_arb_compliance_leaves_car_exposure(
    runtime: Runtime, tmp_path: Path
) -> None:
    import_file(runtime, "car", IMPORTS / "car_issuances.csv", rejects=tmp_path / "i.csv")
    late = date(2026, 6, 1)
    before = liabilities(runtime.engine, late, Filters(program="car-forest"))["exposure"]
    summary = import_file(
        runtime, "car-cancellations", IMPORTS / "car_cancellations.csv", rejects=tmp_path / "c.csv"
    )
    assert summary.kinds["cancellation"].imported == 1
    assert [r.line for r in summary.rejects] == [3]  # 11 credits stated, 10 in the range
    after = liabilities(runtime.engine, late, Filters(program="car-forest"))["exposure"]
    assert before - after == 3000


def test_gold_standard_sample_has_no_overlap_finding(runtime: Runtime, tmp_path: Path) -> None:
    path = shared_data("registry-exports", "gold-standard", "issuances.csv")
    summary = import_file(runtime, "gold-standard", path, rejects=tmp_path / "r.csv")
    assert summary.kinds["issuance"].imported > 0
    assert serial_findings(serial_ranges(runtime.engine)) == []


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def test_a_sweep_after_importing_acr_lapses_only_truly_overdue_projects(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = shared_data("registry-exports", "american-carbon-registry", "issuances.csv")
    summary = import_file(runtime, "acr", path, rejects=tmp_path / "r.csv")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    issued_on: dict[str, list[date]] = {}
    forest: list[tuple[str, date]] = []
    for row in rows:
        month, day, year = row["Date Issued (GMT)"].split(" ")[0].split("/")
        when = date(int(year), int(month), int(day))
        issued_on.setdefault(row["Project ID"], []).append(when)
        if row["Project Type"] == "Forest Carbon":
            forest.append((row["Project ID"], when))
    today = date.today()
    interval = runtime.catalog.get("acr").verification_interval_years.value
    assert interval is not None
    overdue = 0
    for project, when in forest:  # last evidence of verification: a later issuance, or its own
        last = max([d for d in issued_on[project] if d > when], default=when)
        if today > _add_years(last, interval) + timedelta(days=0):
            overdue += 1
    result = sweep(runtime, today)
    assert summary.verifications > 0
    assert result.lapses_recorded == overdue
