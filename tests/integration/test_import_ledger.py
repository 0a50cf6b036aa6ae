"""``permanence import``: registry exports into the ledger, reconciled, repeatable, resumable.

Every import is checked three ways: against the file's own columns, against the ledger's
read-side figures (exposure as of a late date, buffer contributions), and against a second run
of the same file, which must change nothing. The CARB scenario's figures are worked out by hand
in the test from the fixture table.
"""

from __future__ import annotations

import csv
import json
import os
import pty
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ledger.application import vintage_id_for
from permanence.cli.main import app
from permanence.config import Settings
from permanence.imports import IssuanceRecord, acr, parse
from permanence.imports.loader import (
    ImportSummary,
    import_file,
    reversal_cause,
)
from permanence.runtime import Runtime
from projections.queries import Filters, buffer, liabilities
from tests.support import FIXTURES, data_rows, shared_data

IMPORTS = FIXTURES / "imports"
CLI = [sys.executable, "-c", "from permanence.cli import main; main()"]
LATE = date(2030, 1, 1)  # after every fixture issuance, before any period ends


def cli(db: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", db, *args])


def events(rt: Runtime) -> int:
    return rt.app.recorder.max_notification_id() or 0


def rejects_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def ledger_totals(rt: Runtime, program: str, as_of: date) -> tuple[int, int]:
    """(exposure, buffer contributions) of one program as the read side reports them."""
    pool = rt.catalog.get(program).pool_name
    exposure = liabilities(rt.engine, as_of, Filters(program=program))["exposure"]
    contributions = buffer(rt.engine, as_of, pool)["contributions"]
    return exposure, contributions


def assert_second_import_changes_nothing(
    rt: Runtime, fmt: str, path: Path, first: ImportSummary, tmp_path: Path
) -> None:
    before = events(rt)
    again = import_file(rt, fmt, path, rejects=tmp_path / "again.rejects.csv")
    assert again.imported == 0
    assert again.duplicates == first.imported + first.duplicates
    assert again.rejected == first.rejected
    assert (again.quantity, again.buffer) == (0, 0)
    assert events(rt) == before


# --------------------------------------------------------------------------- our fixtures

# format: file, rows read, imported records by kind, issued (quantity, buffer), rejected lines
FIXTURE_CASES: dict[str, tuple[str, int, dict[str, int], tuple[int, int], list[int]]] = {
    # 5,000 + 9,600 + 8,000 + 700; buffer 2,400 issued + 1,500 transferred
    "acr": ("acr_issuances.csv", 11, {"issuance": 4}, (23_300, 3_900), [7, 8, 9, 10, 11, 12, 14]),
    # totals minus the buffer inside them: 7,100 + 1,420 + 40,500 + 30,000
    "car": ("car_issuances.csv", 8, {"issuance": 4}, (79_020, 12_980), [7, 8, 9]),
    "art": ("art_issuances.csv", 4, {"issuance": 3}, (1_979_000, 126_000), [5]),
    # the retired block (line 3) is issued, then retired
    "verra": (
        "verra_transactions.csv",
        5,
        {"issuance": 3, "retirement": 1},
        (21_500, 0),
        [5, 6],
    ),
    "gold-standard": ("gold_standard_issuances.csv", 5, {"issuance": 2}, (1_750, 0), [4, 6]),
    # 980 + 49 + 1,234 (1,234.567 floored); 20 + 1 + 25 (25.9 floored)
    "isometric": ("isometric_issuances.csv", 7, {"issuance": 3}, (2_263, 46), [5, 6, 7]),
    # the parser's fixture: CAFR9102 has no vintage, so its reversal, and the buffer
    # retirement naming it, are refused by the importer (lines 4 and 2)
    "carb": (
        "carb_issuance_table.csv",
        16,
        {
            "issuance": 9,
            "reversal": 3,
            # line 2's and 15's for the unrecorded CAFR9102-A, line 14's and 15's unread
            # part: pool cancellations, with findings, so the pool still reconciles
            "buffer_retirement": 5,
            "surrender": 3,
            "invalidation": 1,
        },
        (385_000, 57_900),
        [4, 17, 18],
    ),
}


@pytest.mark.parametrize("fmt", sorted(FIXTURE_CASES))
def test_fixture_import_reconciles_and_repeats_as_a_no_op(
    runtime: Runtime, fmt: str, tmp_path: Path
) -> None:
    name, read, imported, (quantity, issued_buffer), rejected_lines = FIXTURE_CASES[fmt]
    path = IMPORTS / name
    rejects = tmp_path / "rejects.csv"
    summary = import_file(runtime, fmt, path, rejects=rejects, batch=2)
    assert summary.read == read
    assert {k: c.imported for k, c in summary.kinds.items() if c.imported} == imported
    assert (summary.quantity, summary.buffer) == (quantity, issued_buffer)
    # the ledger holds exactly what was imported; only credits that can reverse are exposed
    # (CAOD9201-A is ODS: its 1,200 invalidated credits were never exposed)
    assert ledger_totals(runtime, summary.program, LATE) == (
        quantity - summary.non_reversible,
        issued_buffer,
    )
    # every rejected row or record is in the rejects file, with its line and its raw row
    rows = data_rows(path)
    written = rejects_of(rejects)
    assert sorted({int(r["line"]) for r in written}) == rejected_lines
    assert summary.rejects_file == str(rejects) and summary.rejected == len(written)
    for reject in written:
        assert reject["reason"].startswith(f"line {reject['line']}: ")
        assert next(csv.reader([reject["raw"]])) == rows[int(reject["line"])]
    assert_second_import_changes_nothing(runtime, fmt, path, summary, tmp_path)


def test_carb_parser_fixture_compensations_land_on_the_reversals(
    runtime: Runtime, tmp_path: Path
) -> None:
    import_file(runtime, "carb", IMPORTS / "carb_issuance_table.csv", rejects=tmp_path / "r.csv")
    reasons = {int(r["line"]): r["reason"] for r in rejects_of(tmp_path / "r.csv")}
    assert reasons[4] == (
        "line 4: reversal: no vintage of project CAFR9102 was issued on or before 2018-12-31"
    )
    assert 2 not in reasons  # recorded as a pool cancellation naming CAFR9102-A instead
    source = runtime.app.vintage(vintage_id_for("carb-forest", "CAFR9101-A"))
    assert [(d.on, d.quantity) for d in source.pool_cancellations] == [(date(2020, 3, 2), 5_000)]
    cafr9103 = runtime.app.vintage(vintage_id_for("carb-forest", "CAFR9103-A"))
    assert [(r.on, r.quantity, r.cause, r.compensated) for r in cafr9103.reversals.values()] == [
        (date(2016, 12, 31), 1_500, "wildfire", 0),
        (date(2017, 12, 31), 7_000, "wildfire", 7_000),  # CAFR9103-B, from CAFR9101-A's buffer
    ]


# --------------------------------------------------------------------------- the real exports


def _int(text: str) -> int:
    return int(float(text.replace(",", ""))) if text.strip() else 0


def _table(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _acr_columns(table: list[dict[str, str]]) -> tuple[int, int]:
    for row in table:
        total = _int(row["Total Credits Issued"])
        assert total == _int(row["Credits Issued to Project"]) + _int(
            row["Credits Issued to Buffer Pool"]
        )
    return (
        sum(_int(r["Credits Issued to Project"]) for r in table),
        sum(
            _int(r["Credits Issued to Buffer Pool"]) + _int(r["Credits Transferred to Buffer Pool"])
            for r in table
        ),
    )


def _car_columns(table: list[dict[str, str]]) -> tuple[int, int]:
    buffers = [
        _int(r["Offset Credits Currently in Reserve Buffer Pool"])
        + _int(r["Offset Credits Intended for Compliance Buffer Pool"])
        for r in table
    ]
    totals = [_int(r["Total Offset Credits Issued"]) for r in table]
    return sum(totals) - sum(buffers), sum(buffers)


def _art_columns(table: list[dict[str, str]]) -> tuple[int, int]:
    for row in table:
        assert _int(row["Total Emission Reductions/Removals"]) == _int(
            row["Credits Verified"]
        ) + _int(row["Credits Deposited in Buffer"])
    return (
        sum(_int(r["Credits Verified"]) for r in table),
        sum(_int(r["Credits Deposited in Buffer"]) for r in table),
    )


def _verra_columns(table: list[dict[str, str]]) -> tuple[int, int]:
    return sum(_int(r["Quantity Issued"]) for r in table), 0


def _gold_standard_columns(table: list[dict[str, str]]) -> tuple[int, int]:
    issued = [r for r in table if r.get("Credit Status", "Issued") in ("Issued", "")]
    return sum(_int(r["Quantity"]) for r in issued), 0


def _isometric_columns(table: list[dict[str, str]]) -> tuple[int, int]:
    supplier = "supplier_credit_batch_size_total.credit_kgs"
    pool = "buffer_pool_credit_batch_size_total.credit_kgs"
    for row in table:  # whole tonnes floored apart: the total may keep one tonne more
        total = _int(row["credit_batch_size_total.credit_kgs"]) // 1000
        assert total - (_int(row[supplier]) // 1000 + _int(row[pool]) // 1000) in (0, 1)
    return sum(_int(r[supplier]) // 1000 for r in table), sum(_int(r[pool]) // 1000 for r in table)


# Which rows carry a reversal obligation, written here from each file's own columns (not by the
# importer's profile patterns): land-based or stored carbon can reverse, gases and energy cannot.
_GASES_AND_ENERGY = (
    "methane", "ozone", "landfill", "nitric", "adipic", "livestock", "industrial", "energy",
    "solar", "wind", "biogas", "geothermal", "pv", "transport", "waste", "orphan",
)


def _reversible_row(fmt: str, row: dict[str, str]) -> bool:
    """The test's own reading: forest/land types reverse, gases and energy do not, and a type
    neither (Gold Standard's "Other") takes the format's documented default (reversible)."""
    if fmt in ("art", "isometric"):
        return True
    kind = (row.get("Project Type", "") + " " + row.get("Methodology", "")).lower()
    if "forest" in kind or "grassland" in kind or "land use" in kind:
        return True
    return not any(word in kind for word in _GASES_AND_ENERGY)


def _quantity(fmt: str, row: dict[str, str]) -> int:
    return {
        "acr": lambda r: _int(r["Credits Issued to Project"]),
        "car": lambda r: _int(r["Total Offset Credits Issued"])
        - _int(r["Offset Credits Currently in Reserve Buffer Pool"])
        - _int(r["Offset Credits Intended for Compliance Buffer Pool"]),
        "art": lambda r: _int(r["Credits Verified"]),
        "verra": lambda r: _int(r["Quantity Issued"]),
        "gold-standard": lambda r: _int(r["Quantity"]),
        "isometric": lambda r: _int(r["supplier_credit_batch_size_total.credit_kgs"]) // 1000,
    }[fmt](row)


def _lined(path: Path) -> list[tuple[int, dict[str, str]]]:
    """Each data row with the physical line it starts on."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        out: list[tuple[int, dict[str, str]]] = []
        start = 2
        for row in reader:
            out.append((start, row))
            start = reader.line_num + 1
        return out


REAL_EXPORTS = {
    "acr": ("american-carbon-registry/issuances.csv", _acr_columns),
    "car": ("climate-action-reserve/issuances.csv", _car_columns),
    "art": ("art-trees/issuances.csv", _art_columns),
    "verra": ("verra/transactions.csv", _verra_columns),
    "gold-standard": ("gold-standard/issuances.csv", _gold_standard_columns),
    "isometric": ("isometric/issuances.csv", _isometric_columns),
}


@pytest.mark.parametrize("fmt", sorted(REAL_EXPORTS))
def test_real_export_reconciles_with_its_columns_and_the_ledger(
    runtime: Runtime, fmt: str, tmp_path: Path
) -> None:
    name, columns = REAL_EXPORTS[fmt]
    path = shared_data("registry-exports", *name.split("/"))
    lined = _lined(path)
    summary = import_file(runtime, fmt, path, rejects=tmp_path / "rejects.csv")
    # the only rows the ledger may refuse are reversible issuances below a profile's buffer
    # floor (Verra's export states no buffer: its pool is a separate account)
    refused = {r.line for r in summary.rejects if r.reason.split(": ", 1)[1].startswith("issuance")}
    assert all("buffer" in r.reason or r.line in refused for r in summary.rejects)
    kept = [row for line, row in lined if line not in refused]
    quantity, contributed = columns(kept)
    exposure = sum(_quantity(fmt, row) for row in kept if _reversible_row(fmt, row))
    assert summary.read == len(lined)
    assert summary.kinds["issuance"].imported == len(kept)
    assert (summary.quantity, summary.buffer) == (quantity, contributed)
    assert summary.non_reversible == quantity - exposure
    assert summary.unexplained == {} and not summary.failed
    assert summary.tonnes["issued"]["ledger"] == quantity
    records = [r for r in parse(fmt, path) if isinstance(r, IssuanceRecord)]
    late = max(max(r.issued_on, r.crediting_start or r.issued_on) for r in records)
    assert ledger_totals(runtime, summary.program, late) == (exposure, contributed)
    assert_second_import_changes_nothing(runtime, fmt, path, summary, tmp_path)


def test_real_verra_retired_blocks_are_issued_then_retired(sqlite_url: str, tmp_path: Path) -> None:
    path = shared_data("registry-exports", "verra", "transactions.csv")
    rt = Runtime(Settings(db=sqlite_url))
    try:
        summary = import_file(rt, "verra", path)
        refused = {r.line for r in summary.rejects}
        retired = [
            r for line, r in _lined(path)
            if r["Retirement/Cancellation Date"].strip() and line not in refused
        ]
        assert summary.kinds["retirement"].imported == len(retired) > 0
        for row in retired:
            vintage = rt.app.vintage(vintage_id_for("verra-vcs", row["Serial Number"]))
            assert [(d.on.isoformat(), d.quantity) for d in vintage.retirements] == [
                (row["Retirement/Cancellation Date"], _int(row["Quantity Issued"]))
            ]
            assert vintage.outstanding_credits == 0
    finally:
        rt.close()


# --------------------------------------------------------------------------- CARB, by hand


def _buffer(db: str, as_of: str) -> dict[str, Any]:
    out = cli(db, "buffer", "--pool", "carb-forest", "--as-of", as_of, "--json")
    assert out.exit_code == 0, out.output
    row: dict[str, Any] = json.loads(out.stdout)["pools"][0]
    return {k: row[k] for k in ("pool", "contributions", "cancelled", "on_hold", "balance")}


def _liabilities(db: str, as_of: str) -> dict[str, Any]:
    out = cli(db, "liabilities", "--program", "carb-forest", "--as-of", as_of, "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    return {"exposure": data["exposure"], "due": data["due"]}


def test_carb_table_gives_the_figures_the_table_implies(db_url: str, tmp_path: Path) -> None:
    """``carb_ledger_table.csv``, line by line (Q = credits issued, B = buffer contribution):

    2   CAFR9501-A issued 2015-06-01  Q 100,000 B 18,000; its buffer retired 5,000 for
        CAFR9502-A (3/2/2020) and 7,000 for CAFR9503-A (8/14/2021)
    3   CAFR9502-A issued 2016-04-01  Q  20,000 B  4,000
    4   CAFR9502 unintentional reversal 6,000 on 2018-12-31 ("Example Fire")
    5   CAFR9503-A issued 2016-05-10  Q  40,000 B  7,000
    6   CAFR9503-B issued 2018-05-10  Q   3,000 B    500
    7   CAFR9503 unintentional reversal 7,000 on 2019-12-31 ("Bark beetle"): 3,000 fit on
        CAFR9503-B (what it still exposes, Q), the other 4,000 spill onto CAFR9503-A
    8   CAFR9504-A issued 2016-03-01  Q  60,000 B 10,000
    9   CAFR9504 intentional reversal 9,000 on 2016-12-31 ("Timber harvest")
    10  CAFR9504-B issued 2018-04-02  Q  30,000 B  5,000, 3,000 surrendered for it
    11  CAFR9504-C issued 2019-04-02  Q  31,000 B  5,100, 3,000 surrendered
    12  CAFR9504-D issued 2020-04-02  Q  32,000 B  5,200, 3,000 surrendered
    13  CAOD9601-A (ODS) issued 2017-02-01  Q 50,000 B 0, 1,200 invalidated
    14  CAFR9505-A issued 2017-03-01  Q  20,000 B  3,600; 2,000 "retired for CAFR9599-A",
        a reversal nobody recorded: the pool cancelled them all the same (a pool
        cancellation, with a finding), and the issuance stands
    15  CAFR9506: "1,500 t" credits: the row is rejected
    16  CAFR9507 reversal 100, but CAFR9507 has no vintage: rejected

    carb-forest allows 180 days to surrender (2016-12-31 + 180 = 2017-06-29); after that
    whatever CAFR9504 still owes is the pool's.
    """
    path = IMPORTS / "carb_ledger_table.csv"
    rejects = tmp_path / "carb.rejects.csv"
    out = cli(db_url, "import", "carb", str(path), "--rejects", str(rejects), "--json")
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout)
    assert (summary["read"], summary["imported"], summary["duplicates"]) == (15, 20, 0)
    assert (summary["rejected"], summary["skipped"]) == (2, 0)
    assert summary["kinds"] == {
        "issuance": {"read": 10, "imported": 10, "duplicates": 0, "rejected": 0},
        "reversal": {"read": 4, "imported": 3, "duplicates": 0, "rejected": 1},
        "buffer_retirement": {"read": 3, "imported": 3, "duplicates": 0, "rejected": 0},
        "surrender": {"read": 3, "imported": 3, "duplicates": 0, "rejected": 0},
        "invalidation": {"read": 1, "imported": 1, "duplicates": 0, "rejected": 0},
    }
    assert summary["findings"] == [(
        "line 14: 2000 buffer credits of CAFR9505-A recorded as a pool cancellation for "
        "CAFR9599-A on 2022-05-01: reversal CAFR9599-A is not recorded in the ledger")]
    issued_q = 100_000 + 20_000 + 40_000 + 3_000 + 60_000 + 30_000 + 31_000 + 32_000
    issued_q += 50_000 + 20_000
    issued_b = 18_000 + 4_000 + 7_000 + 500 + 10_000 + 5_000 + 5_100 + 5_200 + 3_600
    assert summary["totals"] == {"quantity": issued_q, "buffer": issued_b}  # 386,000 / 58,400
    assert [(r["line"], r["reason"]) for r in rejects_of(rejects)] == [
        ("15", "line 15: column 'ARB Offset Credits Issued': '1,500 t' is not a whole number"),
        (
            "16",
            "line 16: reversal: no vintage of project CAFR9507 was issued on or before 2019-12-31",
        ),
    ]

    # 2017-03-31: issued so far 9501-A, 9502-A, 9503-A, 9504-A, 9601-A (less 1,200), 9505-A;
    # CAFR9504's 9,000 is still the proponent's (deadline 2017-06-29)
    assert _liabilities(db_url, "2017-03-31") == {
        # the ODS destruction (CAOD9601-A) cannot reverse: counted as issued, never exposed
        "exposure": 100_000 + 20_000 + 40_000 + 60_000 + 20_000,
        "due": {"proponent": 9_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0},
    }
    assert _buffer(db_url, "2017-03-31") == {
        "pool": "carb-forest",
        "contributions": 18_000 + 4_000 + 7_000 + 10_000 + 3_600,
        "cancelled": 0,
        "on_hold": 0,
        "balance": 42_600,
    }
    # 2019-06-30: everything but 9504-D (2020-04-02) is issued; CAFR9502's 6,000 is not yet
    # compensated (3/2/2020); CAFR9504 surrendered 3,000 + 3,000 of 9,000 and, past its
    # deadline, the remaining 3,000 are the pool's; CAFR9503's reversal is still to come
    assert _liabilities(db_url, "2019-06-30") == {
        "exposure": issued_q - 32_000 - 50_000,
        "due": {"proponent": 0, "pool": 6_000 + (9_000 - 6_000), "fund": 0, "jurisdiction": 0, "insurer": 0},
    }
    assert _buffer(db_url, "2019-06-30") == {
        "pool": "carb-forest",
        "contributions": issued_b - 5_200,
        "cancelled": 0,
        "on_hold": 0,
        "balance": issued_b - 5_200,
    }
    # 2025-12-31: all issued; the invalidation keeps 1,200 out of the exposure; CAFR9502 owes
    # 6,000 - 5,000 = 1,000 (the pool's), CAFR9503's 7,000 and CAFR9504's 9,000 are settled
    assert _liabilities(db_url, "2025-12-31") == {
        "exposure": issued_q - 50_000,
        "due": {"proponent": 0, "pool": 1_000, "fund": 0, "jurisdiction": 0, "insurer": 0},
    }
    assert _buffer(db_url, "2025-12-31") == {
        "pool": "carb-forest",
        "contributions": issued_b,
        "cancelled": 5_000 + 7_000 + 2_000,  # and line 14's pool cancellation (2022-05-01)
        "on_hold": 0,
        "balance": issued_b - 12_000 - 2_000,
    }

    rt = Runtime(Settings(db=db_url))
    try:

        def reversals(key: str) -> list[tuple[Any, ...]]:
            v = rt.app.vintage(vintage_id_for("carb-forest", key))
            return [
                (r.on, r.quantity, r.cause, r.classification, r.compensations)
                for r in v.reversals.values()
            ]

        assert reversals("CAFR9502-A") == [
            (
                date(2018, 12, 31),
                6_000,
                "wildfire",
                "unavoidable",
                [(date(2020, 3, 2), "buffer", 5_000)],
            )
        ]
        # the spill: 3,000 (all it exposes) on the latest vintage, 4,000 on the one before
        assert reversals("CAFR9503-B") == [
            (
                date(2019, 12, 31),
                3_000,
                "pest",
                "unavoidable",
                [(date(2021, 8, 14), "buffer", 3_000)],
            )
        ]
        assert reversals("CAFR9503-A") == [
            (
                date(2019, 12, 31),
                4_000,
                "pest",
                "unavoidable",
                [(date(2021, 8, 14), "buffer", 4_000)],
            )
        ]
        assert reversals("CAFR9504-A") == [
            (
                date(2016, 12, 31),
                9_000,
                "harvest",
                "avoidable",
                [
                    (date(2018, 4, 2), "proponent", 3_000),
                    (date(2019, 4, 2), "proponent", 3_000),
                    (date(2020, 4, 2), "proponent", 3_000),
                ],
            )
        ]
        ods = rt.app.vintage(vintage_id_for("carb-forest", "CAOD9601-A"))
        assert [(d.on, d.quantity) for d in ods.invalidations] == [(date(2017, 2, 1), 1_200)]
        before = events(rt)
    finally:
        rt.close()

    again = cli(db_url, "import", "carb", str(path), "--rejects", str(rejects), "--json")
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert (second["imported"], second["duplicates"], second["rejected"]) == (0, 20, 2)
    rt = Runtime(Settings(db=db_url))
    try:
        assert events(rt) == before
    finally:
        rt.close()


CARB_HEADER = (
    "CARB Project ID,Project Type,Reporting Period Start Date,Reporting Period End Date,Vintage,"
    "ARB Offset Credits Issued,Forest Buffer Account Contribution,Issuance Date,"
    "Intentional Reversal,Unintentional Reversal,CARB Issuance ID,Invalidated or Canceled,"
    "Buffer Pool Retired,Retired for Intentional Reversal,Comment\n"
)


def test_carb_commands_the_ledger_refuses_are_rejected_whole(
    runtime: Runtime, tmp_path: Path
) -> None:
    path = tmp_path / "carb.csv"
    path.write_text(
        CARB_HEADER
        + "CAFR1,Forest,2019-01-01,2019-12-31,2019.0,1000.0,200.0,2020-01-10,,,CAFR1-A,,,,\n"
        # 1,300 > Q + B = 1,200: nothing of it may be recorded
        + "CAFR1,Forest,2020-01-01,2020-12-31,,,,,,-1300.0,,,,,\n"
        # an intentional reversal of 100, then a surrender of 150: more than is owed
        + "CAFR1,Forest,2021-01-01,2021-12-31,,,,,-100.0,,,,,,\n"
        + "CAFR1,Forest,2022-01-01,2022-12-31,2022.0,500.0,50.0,2023-02-01,,,CAFR1-B,,,150.0,\n"
        # invalidating more than was issued
        + "CAFR2,Forest,2019-01-01,2019-12-31,2019.0,10.0,,2020-01-10,,,CAFR2-A,11.0,,,\n",
        encoding="utf-8",
    )
    summary = import_file(runtime, "carb", path, rejects=tmp_path / "r.csv")
    reasons = [(r["line"], r["reason"]) for r in rejects_of(tmp_path / "r.csv")]
    assert reasons == [
        (
            "3",
            (
                "line 3: reversal: reversal CAFR1-A of 1300 tonnes exceeds what project CAFR1's "
                "vintages issued on or before 2020-12-31 can still reverse (1000)"
            ),
        ),
        (
            "5",
            (
                "line 5: surrender: 150 credits of CAFR1-B surrendered, but project CAFR1 owes "
                "only 100 for avoidable reversals on 2023-02-01"
            ),
        ),
        (
            "6",
            "line 6: invalidation: quantity: cannot invalidate 11; only 10 credits are outstanding",
        ),
    ]
    assert summary.kinds["reversal"].imported == 1  # the intentional 100 (CAFR1-B)
    first = runtime.app.vintage(vintage_id_for("carb-forest", "CAFR1-A"))
    assert [(r.quantity, r.classification, r.compensated) for r in first.reversals.values()] == [
        (100, "avoidable", 0)
    ]
    assert runtime.app.vintage(vintage_id_for("carb-forest", "CAFR2-A")).invalidations == []


@pytest.mark.parametrize(
    ("comment", "intentional", "cause"),
    [
        (None, False, "wildfire"),
        ("Reversal verified for the 2020 reporting period.", False, "wildfire"),
        ("Sudden Oak Death mortality", False, "disease"),
        ("Windthrow after the winter storms; some fire damage", False, "storm"),
        ("Harvest by the new owner", False, "wildfire"),  # unintentional: never a harvest
        (None, True, "mismanagement"),
        ("Timber harvest beyond the baseline", True, "harvest"),
        ("Project terminated by the owner", True, "termination"),
    ],
)
def test_reversal_cause_from_the_comment(
    comment: str | None, intentional: bool, cause: str
) -> None:
    assert reversal_cause(comment, intentional) == cause


# --------------------------------------------------------------------------- whole files


def test_same_key_twice_in_one_file_is_a_duplicate(runtime: Runtime, tmp_path: Path) -> None:
    path = tmp_path / "acr.csv"
    row = "1/2/2025 3:04:05 PM,2024,1/1/2024,12/31/2024,100,80,20,ACR1\n"
    header = ",".join((acr.ISSUED, "Vintage", "ReportingPeriodBegin", "ReportingPeriodEnd",
                       *acr.REQUIRED[1:]))
    path.write_text(header + "\n" + row + row, encoding="utf-8")
    summary = import_file(runtime, "acr", path)
    assert (summary.read, summary.imported, summary.duplicates) == (2, 1, 1)
    assert (summary.quantity, summary.buffer) == (80, 20)
    assert events(runtime) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"Project ID,Vintage\nACR1,2024\n", "not a acr export: missing column(s)"),
        (b"", "empty file"),
        # a bad byte far down the file: found before anything is written
        (
            (",".join(acr.REQUIRED) + "\n").encode()
            + b"1/2/2025 3:04:05 PM,2024,1/1/2024,12/31/2024,100,80,20,ACR1\n" * 3
            + b"1/2/2025 3:04:05 PM,2024,1/1/2024,12/31/2024,100,80,20,ACR\xff\n",
            "bad.csv: unreadable line 5: not UTF-8",
        ),
    ],
)
def test_a_file_in_the_wrong_format_exits_2_and_writes_nothing(
    db_url: str, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    out = cli(db_url, "import", "acr", str(path))
    assert out.exit_code == 2
    assert message in out.output and out.output.startswith("error: ")
    assert not (tmp_path / "bad.csv.rejects.csv").exists()
    rt = Runtime(Settings(db=db_url))
    try:
        assert events(rt) == 0
    finally:
        rt.close()


def test_unknown_format_and_missing_file_exit_2(sqlite_url: str, tmp_path: Path) -> None:
    out = cli(sqlite_url, "import", "apx", str(IMPORTS / "acr_issuances.csv"))
    assert out.exit_code == 2 and "format: 'apx' is not one of" in out.output
    out = cli(sqlite_url, "import", "acr", str(tmp_path / "nowhere.csv"))
    assert out.exit_code == 2 and "no such file" in out.output


def test_default_rejects_file_is_next_to_the_input(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "acr.csv"
    path.write_bytes((IMPORTS / "acr_issuances.csv").read_bytes())
    out = cli(sqlite_url, "import", "acr", str(path), "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["rejects_file"] == str(tmp_path / "acr.csv.rejects.csv")
    assert len(rejects_of(tmp_path / "acr.csv.rejects.csv")) == 7
    human = cli(sqlite_url, "import", "acr", str(path))
    assert "11 rows read, 0 imported, 4 duplicates, 7 rejected" in human.stdout


# --------------------------------------------------------------------------- crash and resume


def write_acr(path: Path, rows: int) -> tuple[int, int]:
    """A generated ACR export of ``rows`` distinct issuances; returns (quantity, buffer)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow((acr.ISSUED, "Vintage", "ReportingPeriodBegin", "ReportingPeriodEnd",
                         *acr.REQUIRED[1:]))
        for n in range(rows):
            day = date(2020, 1, 1) + timedelta(days=n % 1500)
            writer.writerow(
                [
                    f"{day.month}/{day.day}/{day.year} 10:00:00 AM",
                    day.year - 1,
                    f"1/1/{day.year - 1}",
                    f"12/31/{day.year - 1}",
                    n % 97 + 120,
                    n % 97 + 100,
                    20,
                    f"ACR{n}",
                ]
            )
    return sum(n % 97 + 100 for n in range(rows)), 20 * rows


def import_process(db: str, path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "--db", db, "import", "acr", str(path), "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def figures(db: str) -> dict[str, Any]:
    rt = Runtime(Settings(db=db))
    try:
        notes = rt.app.recorder.select_notifications(start=1, limit=10**6)
        return {
            "events": len(notes),
            "vintages": len({n.originator_id for n in notes}),
            "ids": sorted(str(n.originator_id) for n in notes if n.originator_version == 1),
            "liabilities": liabilities(rt.engine, LATE),
            "buffer": buffer(rt.engine, LATE, "acr"),
        }
    finally:
        rt.close()


@pytest.mark.slow
def test_an_import_killed_mid_way_resumes_to_the_clean_result(db_url: str, tmp_path: Path) -> None:
    rows = 12_000
    path = tmp_path / "acr.csv"
    quantity, contributed = write_acr(path, rows)
    Runtime(Settings(db=db_url)).close()  # tables exist before the importer and we both look
    rt = Runtime(Settings(db=db_url))
    try:
        proc = import_process(db_url, path, "--batch", "300")
        while events(rt) < 900 and proc.poll() is None:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        done = events(rt)
        assert 0 < done < rows  # killed mid-way: some batches saved, not all
    finally:
        rt.close()

    resumed = import_process(db_url, path)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    summary = json.loads(out)
    assert summary["imported"] + summary["duplicates"] == rows
    assert summary["duplicates"] >= 900 and summary["rejected"] == 0

    clean_db = str(tmp_path / "clean.db")
    clean = import_process(clean_db, path)
    assert clean.communicate(timeout=300)[0] and clean.returncode == 0
    result, expected = figures(db_url), figures(clean_db)
    assert result == expected
    assert result["events"] == result["vintages"] == rows  # one Issued each, no duplicate
    assert result["ids"] == sorted(
        vintage_id_for("acr", r.source_key)
        for r in parse("acr", path)
        if isinstance(r, IssuanceRecord)
    )
    assert result["liabilities"]["exposure"] == quantity
    assert result["buffer"]["contributions"] == contributed


# --------------------------------------------------------------------------- progress


@pytest.mark.slow
def test_progress_bar_on_a_terminal_for_large_files_only(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "acr.csv"
    write_acr(path, 6_000)

    def stderr_on_a_terminal(*args: str) -> tuple[str, str]:
        leader, follower = pty.openpty()
        proc = subprocess.Popen(
            [*CLI, "--db", sqlite_url, "import", "acr", str(path), *args],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            seen += chunk
        out = proc.communicate(timeout=300)[0]
        os.close(leader)
        assert proc.returncode == 0
        return out, seen.decode("utf-8", "replace")

    out, err = stderr_on_a_terminal()
    assert "importing rows" in err and "6,000 rows read" in out
    out, err = stderr_on_a_terminal("--json")
    assert err == "" and json.loads(out)["duplicates"] == 6_000


def test_a_republished_table_adds_only_what_grew(runtime: Runtime, tmp_path: Path) -> None:
    """CARB's columns are cumulative: a later edition of the table says "1,500 invalidated so
    far" where the earlier said 1,200; the import records the 300 more, and refuses a figure
    that shrank."""
    issuance = "CAOD1,ODS,2016-01-01,2016-12-31,2016.0,50000.0,,2017-02-01,,,CAOD1-A,{},,,\n"
    path = tmp_path / "carb.csv"
    vid = vintage_id_for("carb-forest", "CAOD1-A")

    def edition(invalidated: str) -> ImportSummary:
        path.write_text(CARB_HEADER + issuance.format(invalidated), encoding="utf-8")
        return import_file(runtime, "carb", path, rejects=tmp_path / "r.csv")

    assert edition("1200.0").kinds["invalidation"].imported == 1
    assert edition("1500.0").kinds["invalidation"].imported == 1
    invalidated = [d.quantity for d in runtime.app.vintage(vid).invalidations]
    assert invalidated == [1_200, 300]
    assert edition("1500.0").kinds["invalidation"].duplicates == 1
    shrunk = edition("1000.0")
    assert shrunk.kinds["invalidation"].rejected == 1
    assert shrunk.rejects[0].reason == (
        "line 2: invalidation: invalidation of CAOD1-A: the ledger already holds 1500 tonnes, "
        "the file states 1000"
    )
    assert [d.quantity for d in runtime.app.vintage(vid).invalidations] == [1_200, 300]
