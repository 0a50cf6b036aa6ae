"""``permanence check`` (cross-source consistency) and the CADT-shaped export."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ledger import events as ev
from permanence.cli.main import app
from permanence.runtime import Runtime
from projections.cadt import ISSUANCE_FIELDS, PROJECT_FIELDS, UNIT_FIELDS, neutralise
from projections.consistency import parse_serial_range


def cli(db: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", db, *args])


def issue(rt: Runtime, program: str, project: str, quantity: int, first: str | None = None,
          last: str | None = None, on: date = date(2023, 1, 1), year: int = 2022,
          buffer: int = 0) -> str:
    # as an export that does not say what was withheld for the buffer is imported
    return rt.app.issue(program=program, project=project, vintage_year=year, quantity=quantity,
                        buffer=buffer, on=on, serial_first=first, serial_last=last,
                        enforce_minimum_buffer=False)


def findings(db: str) -> tuple[int, list[dict[str, Any]]]:
    result = cli(db, "check", "--json")
    return result.exit_code, json.loads(result.output)["findings"]


@pytest.mark.parametrize(
    ("first", "last", "parsed"),
    [
        ("100", "199", ("", 100, 199)),
        ("VCS-VCU-0100", "VCS-VCU-0199", ("VCS-VCU-", 100, 199)),
        ("GS1-1-UG-GS11236-16-2024-30307-1", "19149", ("GS1-1-UG-GS11236-16-2024-30307-", 1, 19149)),
        ("A-7", None, ("A-", 7, 7)),
        ("A-100", "B-199", None),
        ("A-100", "A-99", None),
        ("ABC", "DEF", None),
    ],
)
def test_serial_ranges_compare_their_trailing_numbers(
    first: str, last: str | None, parsed: tuple[str, int, int] | None
) -> None:
    assert parse_serial_range(first, last) == parsed


def test_clean_ledger_reports_nothing(runtime: Runtime, db_url: str) -> None:
    issue(runtime, "verra-vcs", "VCS1", 100, "100", "199")
    issue(runtime, "acr", "ACR1", 100, "200", "299")  # adjacent, not overlapping
    issue(runtime, "verra-vcs", "VCS2", 100, "A-100", "A-199")
    issue(runtime, "acr", "ACR2", 100, "B-100", "B-199")  # same numbers, another space
    vid = issue(runtime, "verra-vcs", "VCS3", 1_000, buffer=250)
    rev = runtime.app.record_reversal(vid, date(2024, 1, 1), 100, "wildfire")
    runtime.app.compensate(vid, rev["reversal_id"], "buffer", 100, date(2024, 2, 1))
    runtime.app.retire(vid, 900, date(2024, 3, 1))
    result = cli(db_url, "check")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "0 finding(s)"


def test_overlapping_serials_across_programs_are_reported(runtime: Runtime, db_url: str) -> None:
    verra = issue(runtime, "verra-vcs", "VCS1", 1_000, "VCU-1000", "VCU-1999")
    acr = issue(runtime, "acr", "ACR1", 600, "VCU-1900", "VCU-2499", year=2021)
    issue(runtime, "acr", "ACR2", 500, "VCU-2500", "VCU-2999")
    code, found = findings(db_url)
    assert code == 1
    assert [(f["kind"], set(f["vintage_ids"])) for f in found] == [
        ("serial-overlap", {verra, acr})
    ]
    assert "overlap on 100 serial(s) from VCU-1900 to VCU-1999" in found[0]["message"]


def test_same_issuance_under_two_programs_is_reported_once(runtime: Runtime, db_url: str) -> None:
    by_key = [issue(runtime, p, "P-77", 5_000, on=date(2023, 4, 1)) for p in ("verra-vcs", "acr")]
    by_serial = [issue(runtime, p, f"X-{p}", 300, "9000", "9299", year=2020 + i)
                 for i, p in enumerate(("verra-vcs", "gold-standard"))]
    # equal key *and* equal serials: found by both checks, reported once
    by_both = [issue(runtime, p, "P-78", 5_000, "500", "5499", on=date(2023, 5, 1))
               for p in ("verra-vcs", "acr")]
    code, found = findings(db_url)
    assert code == 1
    assert len(found) == 3
    assert {(f["kind"], frozenset(f["vintage_ids"])) for f in found} == {
        ("double-issuance", frozenset(by_key)),
        ("double-issuance", frozenset(by_serial)),
        ("double-issuance", frozenset(by_both)),
    }
    messages = " | ".join(f["message"] for f in found)
    assert "project P-77, vintage 2022: 5,000 credits issued on 2023-04-01 appear under programs " \
           "acr, verra-vcs" in messages
    assert "serial range 9000-9299 is issued under two programs" in messages


def test_replayed_totals_that_do_not_add_up_are_reported(runtime: Runtime, db_url: str) -> None:
    vid = issue(runtime, "verra-vcs", "VCS5", 1_000, buffer=100)
    vintage = runtime.app.vintage(vid)  # bypass the command's check, as a bad import might
    vintage.trigger_event(ev.ReversalRecorded, on=date(2024, 1, 1), reversal_id="R1",
                          quantity=1_500, cause="wildfire", classification="unavoidable",
                          obligor="pool")
    runtime.app.save(vintage)
    code, found = findings(db_url)
    assert code == 1
    assert [(f["kind"], f["vintage_ids"]) for f in found] == [("reversals-exceed-issued", [vid])]
    assert found[0]["message"].endswith("reversals of 1,500 exceed the 1,100 issued")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_cadt_export_has_the_documented_shape(runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    vid = issue(runtime, "verra-vcs", '=HYPERLINK("x")', 1_000, "100", "1099", buffer=250)
    runtime.app.retire(vid, 300, date(2024, 1, 1))
    runtime.app.cancel(vid, 50, date(2024, 2, 1))
    runtime.app.invalidate(vid, 20, date(2024, 3, 1))
    runtime.app.verify(vid, date(2024, 6, 1), verifier="SCS Global")
    issue(runtime, "acr", "ACR1", 500)

    out = tmp_path / "cadt"
    result = cli(db_url, "export", "--format", "cadt", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"directory": str(out), "projects": 2, "issuances": 2,
                                         "units": 5}
    for name, fields in (("projects.csv", PROJECT_FIELDS), ("issuances.csv", ISSUANCE_FIELDS),
                         ("units.csv", UNIT_FIELDS)):
        with (out / name).open(newline="", encoding="utf-8") as f:
            assert tuple(next(csv.reader(f))) == fields

    projects = rows(out / "projects.csv")
    named = next(p for p in projects if p["program"] == "verra-vcs")
    assert named["projectName"] == named["projectId"] == '\'=HYPERLINK("x")'
    raw = (out / "projects.csv").read_text(encoding="utf-8")
    assert ",=HYPERLINK" not in raw and ',"=HYPERLINK' not in raw

    issuance = next(i for i in rows(out / "issuances.csv")
                    if i["warehouseProjectId"] == named["warehouseProjectId"])
    assert (issuance["startDate"], issuance["endDate"]) == ("2022-01-01", "2022-12-31")
    assert (issuance["verificationReportDate"], issuance["verificationBody"]) == (
        "2024-06-01", "SCS Global")

    units = [u for u in rows(out / "units.csv") if u["issuanceId"] == issuance["id"]]
    assert {u["unitStatus"]: int(u["unitCount"]) for u in units} == {
        "Held": 630, "Retired": 300, "Cancelled": 70, "Buffer": 250}
    by_status = {u["unitStatus"]: u for u in units}
    assert (by_status["Held"]["serialNumberBlock"], by_status["Held"]["unitBlockStart"],
            by_status["Held"]["unitBlockEnd"]) == ("100-1099", "100", "1099")
    assert by_status["Buffer"]["serialNumberBlock"] == ""
    assert by_status["Buffer"]["unitStatusReason"] == "contribution to pooled buffer verra-vcs"
    assert len({u["warehouseUnitId"] for u in units}) == 4

    data = json.loads((out / "cadt.json").read_text(encoding="utf-8"))
    assert {p["projectName"] for p in data["projects"]} == {'=HYPERLINK("x")', "ACR1"}
    first = (out / "units.csv").read_bytes()
    assert cli(db_url, "export", "--format", "cadt", "--out", str(out)).exit_code == 0
    assert (out / "units.csv").read_bytes() == first  # identifiers are deterministic


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx"])
def test_formula_cells_are_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell
    assert neutralise("plain") == "plain" and neutralise(None) == "" and neutralise(5) == "5"
