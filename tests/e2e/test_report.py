"""The trustee report: one file, figures as worked by hand, charts inline, inert ledger text.

Ledger (worked by hand from domain.md section 4), on both backends:

- A: icvcm-ccp (its own pool), project ``<script>alert(1)</script>``, issued 2025-01-01,
  Q = 80,000, B = 20,000, labelled CCP-I ("biochar kiln pilot") on 2025-02-01. An avoidable
  harvest reversal of 1,000 on 2028-02-01, owed by the proponent.
- B: car-forest, project ``=HYPERLINK(...)``, issued 2026-03-01, Q = 10,000, B = 2,000. A
  wildfire reversal of 1,500 on 2027-06-01, compensated from the buffer on 2027-10-01.
- C: carb-forest, project Ridge, issued 2025-06-01, Q = 100,000, B = 5,000. A wildfire
  reversal of 55,000 on 2027-03-01, not compensated: the pool owes it.

As of 2028-06-01: exposure 190,000; due 56,000 (proponents 1,000, pools 55,000); buffer
27,000 - 1,500 = 25,500. Per pool: icvcm-ccp holds 20,000 and owes 0; car-forest held
2,000 from 2026-03-01, owed 1,500 from 2027-06-01, and holds 500 owing 0 from 2027-10-01
(the exact date of the compensation, not 2028-01-01); carb-forest holds 5,000 and owes
55,000 from 2027-03-01: 50,000 beyond what it holds, flagged.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from permanence.cli.main import app as cli
from permanence.config import Settings
from permanence.runtime import Runtime
from projections import queries
from projections.report import write_report_files, write_report_html
from projections.report_series import buffer_steps
from risk.service import latest_stress_tests, record_stress_test

AS_OF = date(2028, 6, 1)
SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.example","x")'
POOLS = ("car-forest", "carb-forest", "icvcm-ccp")


def build_ledger(rt: Runtime) -> dict[str, str]:
    app = rt.app
    a = app.issue(program="icvcm-ccp", project=SCRIPT, quantity=80_000, buffer=20_000,
                  on=date(2025, 1, 1), vintage_year=2024)
    b = app.issue(program="car-forest", project=FORMULA, quantity=10_000, buffer=2_000,
                  on=date(2026, 3, 1), vintage_year=2025)
    c = app.issue(program="carb-forest", project="Ridge", quantity=100_000, buffer=5_000,
                  on=date(2025, 6, 1), vintage_year=2025)
    app.label_sandbox(a, "CCP-I", "biochar kiln pilot", date(2025, 2, 1))
    app.record_reversal(b, date(2027, 6, 1), 1_500, "wildfire")
    app.compensate(b, "R1", "buffer", 1_500, date(2027, 10, 1))
    app.record_reversal(a, date(2028, 2, 1), 1_000, "harvest")
    app.record_reversal(c, date(2027, 3, 1), 55_000, "wildfire")
    return {"a": a, "b": b, "c": c}


def record_runs(rt: Runtime) -> None:
    """carb-forest: a simulated run with a ruin curve and a loss distribution (ST1), and a
    later-dated run (ST2) a report as of 2028-06-01 must not show; icvcm-ccp: an old-style
    run with neither; car-forest: a backtest that allocated its buffer by hazard."""
    app = rt.app
    record_stress_test(app, "carb-forest", date(2028, 1, 1), {
        "model": "independent", "pool": "carb-forest", "as_of": "2028-01-01",
        "scenarios": 1_000, "horizon": 4, "seed": 7, "levels": [0.995],
        "pool_figures": {"buffer_balance": 5_000, "total_exposure": 100_000}}, {
        "p_exhausted": 0.25, "standard_error": 0.0137,
        "p_exhausted_by_year": [0.05, 0.1, 0.2, 0.25], "expected_loss": 3_000.0,
        "var": {"0.995": 18_000.0}, "expected_shortfall": {"0.995": 21_000.0},
        "loss_histogram": {"edges": [0.0, 2_500.0, 5_000.0, 7_500.0, 10_000.0],
                           "counts": [500.0, 250.0, 150.0, 100.0]}})
    record_stress_test(app, "carb-forest", date(2029, 1, 1), {
        "model": "independent", "scenarios": 10, "horizon": 2, "seed": 1},
        {"p_exhausted": 0.9, "expected_loss": 9.0})
    record_stress_test(app, "icvcm-ccp", date(2027, 1, 1), {
        "model": "independent", "scenarios": 100, "horizon": 10, "seed": 1},
        {"p_exhausted": 0.0, "expected_loss": 12.5})
    record_stress_test(app, "car-forest", date(2028, 1, 1), {
        "model": "backtest", "allocations": {"wildfire": 1_600, "disease": 400}}, {
        "total_loss": 1_500, "share_of_pool_consumed": 0.75, "exhausted_year": None,
        "losses_by_year": [1_500],
        "allocations": {"wildfire": {"allocation": 1_600, "losses": 1_500,
                                     "share_consumed": 0.9375},
                        "disease": {"allocation": 400, "losses": 0, "share_consumed": 0.0}}})


def all_runs(rt: Runtime) -> list[dict[str, Any]]:
    return [run for pool in POOLS for run in latest_stress_tests(rt.app, pool)]


class Page(HTMLParser):
    """Texts inside each element with an id, svg elements, images, scripts, data-keys."""

    VOID = frozenset({"img", "meta", "br", "hr", "link", "input", "path", "use", "rect",
                      "line", "circle", "polyline", "polygon", "stop"})

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.svgs: list[str] = []
        self.scripts = 0
        self.links: list[str] = []
        self.data_keys: list[str] = []
        self.texts: dict[str, list[str]] = {}
        self._stack: list[tuple[str, str | None]] = []
        self._in_svg = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found.get("src") or "")
        if tag == "script":
            self.scripts += 1
        if tag == "svg":
            self.svgs.append(found.get("id") or "")
            self._in_svg += 1
        for attr in ("href", "src", "xlink:href"):
            if found.get(attr) and not str(found[attr]).startswith("#"):
                self.links.append(str(found[attr]))
        if "data-key" in found:
            self.data_keys.append(str(found["data-key"]))
        if tag in self.VOID:
            return
        ident = None if self._in_svg else found.get("id")
        if ident:
            self.texts.setdefault(ident, [])
        self._stack.append((tag, ident))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg -= 1
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._in_svg:
            return  # chart text is checked in the SVG itself
        for _, ident in self._stack:
            if ident:
                self.texts[ident].append(data)

    def text(self, ident: str) -> str:
        """The element's text, one space between text nodes (as a reader sees cells)."""
        return re.sub(r"\s+", " ", " ".join(self.texts[ident])).strip()

    def all_text(self) -> str:
        return " ".join(self.text(i) for i in self.texts)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def svg_of(html: str, ident: str) -> str:
    found = re.search(rf'<svg id="{re.escape(ident)}".*?</svg>', html, re.DOTALL)
    assert found, ident
    return found.group(0)


@pytest.fixture
def ledger(runtime: Runtime) -> Iterator[Runtime]:
    build_ledger(runtime)
    record_runs(runtime)
    runtime.refresh()
    yield runtime


def test_one_file_with_the_charts_inline(ledger: Runtime, tmp_path: Path) -> None:
    out = tmp_path / "mail" / "trustees.html"
    page_path = write_report_html(ledger.engine, out, AS_OF, all_runs(ledger))

    assert page_path == out
    assert [p.name for p in out.parent.iterdir()] == ["trustees.html"]  # nothing beside it
    html = out.read_text(encoding="utf-8")
    page = parse(out)
    assert page.images == [] and page.scripts == 0
    assert page.links == []  # nothing to fetch: it opens offline and survives mailing
    assert set(page.svgs) >= {"chart-dues", "chart-balance", "chart-runoff", "chart-bearer",
                              "chart-hazard-0", "chart-ruin-1", "chart-loss-1"}
    assert "chart-program" not in page.svgs  # every program has its own pool
    assert "exposure-by-program" not in page.texts
    assert len(page.svgs) == len(set(page.svgs))
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html


def test_headline_and_the_pool_that_owes_more_than_it_holds(
    ledger: Runtime, tmp_path: Path
) -> None:
    page = parse(write_report_html(ledger.engine, tmp_path / "r.html", AS_OF))

    assert page.text("exposure").startswith("Exposure 190,000 tCO2e")
    assert page.text("due").startswith("Due liability 56,000 tCO2e proponents 1,000 · pools 55,000")
    assert page.text("balance").startswith("Buffer balance 25,500 tCO2e")
    # coverage: (25,500 - 55,000) / 190,000
    assert page.text("coverage").startswith(f"Coverage ratio {(25_500 - 55_000) / 190_000:.1%}")
    assert page.text("uncovered").startswith("Owed beyond the buffer 50,000 tCO2e")
    dues = page.text("dues")
    assert "carb-forest 5,000 55,000 0 55,000 Owes 50,000 more than it holds 100,000" in dues
    assert "car-forest 500 0 0 0 Covered 10,000 5.0%" in dues
    assert "icvcm-ccp 20,000 0 0 0 Covered 80,000 25.0%" in dues
    chart = svg_of((tmp_path / "r.html").read_text(encoding="utf-8"), "chart-dues")
    assert "UNCOVERED 50,000" in chart


def test_buffer_steps_on_the_exact_dates(ledger: Runtime, tmp_path: Path) -> None:
    steps = buffer_steps(ledger.engine, AS_OF)
    assert {p: [(s.day, s.balance, s.owed) for s in series] for p, series in steps.items()} == {
        "car-forest": [(date(2026, 3, 1), 2_000, 0), (date(2027, 6, 1), 2_000, 1_500),
                       (date(2027, 10, 1), 500, 0)],
        "carb-forest": [(date(2025, 6, 1), 5_000, 0), (date(2027, 3, 1), 5_000, 55_000)],
        "icvcm-ccp": [(date(2025, 1, 1), 20_000, 0)],
    }
    # each pool's last step is the headline figure the queries give
    for row in queries.buffer(ledger.engine, AS_OF)["pools"]:
        assert steps[row["pool"]][-1].balance == row["balance"]
        assert steps[row["pool"]][-1].owed == row["owed"]
    # the day before the compensation, the pool still held 2,000
    before = buffer_steps(ledger.engine, date(2027, 9, 30))["car-forest"]
    assert before[-1].balance == 2_000

    page = parse(write_report_html(ledger.engine, tmp_path / "r.html", AS_OF))
    car = page.text("steps-1")
    assert car.startswith("Pool car-forest")
    assert "2027-10-01 2,000 1,500 0 500 0 0" in car
    assert "2028-01-01" not in page.text("buffer-over-time")
    balance_chart = svg_of((tmp_path / "r.html").read_text(encoding="utf-8"), "chart-balance")
    for pool in POOLS:  # one line per pool, named in the legend
        assert f">{pool}<" in balance_chart
    # what a pool owes is drawn beside its balance when it owes anything
    assert ">carb-forest owes<" in balance_chart and ">car-forest owes<" in balance_chart
    assert ">icvcm-ccp owes<" not in balance_chart


def test_runoff_by_bearer_and_exposure_by_program_when_it_differs(
    runtime: Runtime, tmp_path: Path
) -> None:
    build_ledger(runtime)
    # a vintage of icvcm-ccp in an industry-wide pool: programs and pools now differ
    runtime.app.issue(program="icvcm-ccp", project="Mangrove", quantity=3_000, buffer=600,
                      on=date(2026, 1, 1), vintage_year=2025, pool="industry-pool")
    page = parse(write_report_html(runtime.engine, tmp_path / "r.html", AS_OF))

    assert "chart-program" in page.svgs
    assert "icvcm-ccp 83,000 0 1,000 0" in page.text("exposure-by-program")
    bearers = page.text("exposure-by-bearer")
    assert "icvcm-ccp 80,000" in bearers and "industry-pool 3,000" in bearers
    runoff = page.text("runoff")
    assert "Total still to run off: 193,000 tCO2e" in runoff
    assert "industry-pool (pool)" in runoff
    # period ends: A 2065-01-01, Mangrove 2066-01-01, C (100 y) 2125, B (100 y) 2126
    assert re.search(r"2066 (0 )*3,000 (0 )*3,000", runoff), runoff


def test_runoff_and_exposure_of_a_transferee(runtime: Runtime, tmp_path: Path) -> None:
    build_ledger(runtime)
    d = runtime.app.issue(program="icvcm-ccp", project="Delta", quantity=1_000, buffer=200,
                          on=date(2025, 1, 1), vintage_year=2024)
    runtime.app.transfer_liability(d, "Sierra Permanence Fund", "fund", date(2027, 1, 1))
    page = parse(write_report_html(runtime.engine, tmp_path / "r.html", AS_OF))

    # the pool still bears A's 80,000; the fund bears D's 1,000 from the transfer
    bearers = page.text("exposure-by-bearer")
    assert "icvcm-ccp 80,000" in bearers
    assert "Sierra Permanence Fund (transferred) 1,000" in bearers
    runoff = page.text("runoff")
    assert "Sierra Permanence Fund (transferee)" in runoff
    assert "Total still to run off: 191,000 tCO2e" in runoff
    # both leave in 2065 (40 years from 2025-01-01): 80,000 from the pool, 1,000 from the fund
    header = re.search(r"Year (.*?) Exposure ending", runoff)
    assert header, runoff
    columns = re.findall(r"(.+?) \((?:pool|transferee)\)", header.group(1))
    row = re.search(r"2065 ([\d, ]+?) 81,000", runoff)
    assert row, runoff
    cells = dict(zip([c.strip() for c in columns], row.group(1).split(), strict=True))
    assert cells["icvcm-ccp"] == "80,000" and cells["Sierra Permanence Fund"] == "1,000"


def test_stress_section_per_pool_in_words(ledger: Runtime, tmp_path: Path) -> None:
    path = write_report_html(ledger.engine, tmp_path / "r.html", AS_OF, all_runs(ledger))
    html = path.read_text(encoding="utf-8")
    page = parse(path)

    stress = page.text("stress")
    carb = page.text("stress-2")
    assert carb.startswith("Pool carb-forest: run ST1")  # ST2 tested 2029: not as of 2028-06-01
    assert "Independent annual events per project" in carb
    assert "Simulated futures 1,000" in carb and "Horizon (years) 4" in carb
    assert "Probability the buffer runs out within the horizon 25.00%" in carb
    assert "Value at risk at 99.5%" in carb and "18,000" in carb
    assert "Expected shortfall at 99.5%" in carb and "21,000" in carb
    assert "1 5.00% 4 25.00%" in carb  # the ruin table at its milestones
    assert "buffer balance the run tested, 5,000 tCO2e" in carb
    assert " by —" not in carb  # who recorded it is said only when known
    ruin = svg_of(html, "chart-ruin-1")
    assert "P(exhausted by then)" in ruin
    loss = svg_of(html, "chart-loss-1")
    assert "Buffer balance 5,000" in loss
    # an old run without the new keys still renders, saying what it lacks
    old = page.text("stress-3")
    assert old.startswith("Pool icvcm-ccp: run ST1")
    assert "no ruin curve can be drawn" in old and "did not store its loss distribution" in old
    # no raw keys, no microseconds, no Python values where a reader looks
    words = page.all_text()
    for raw in ("p_exhausted", "expected_loss", "standard_error", "None", "True", "{"):
        assert raw not in words, raw
    assert not re.search(r"\d{2}:\d{2}:\d{2}\.\d+", words)
    recorded = re.search(r"recorded (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC", stress)
    assert recorded, stress
    # machine readers find the stored keys as attributes
    assert "p_exhausted" in page.data_keys and "var.0.995" in page.data_keys


def test_buffer_by_hazard(ledger: Runtime, tmp_path: Path) -> None:
    page = parse(write_report_html(ledger.engine, tmp_path / "r.html", AS_OF, all_runs(ledger)))
    hazards = page.text("hazards")
    assert "Pool car-forest" in hazards and "run ST1" in hazards
    assert f"wildfire 1,600 1,500 {1_500 / 1_600:.2%} 100" in hazards
    assert "disease 400 0 0.00% 400" in hazards
    assert f"All hazards allocated 2,000 1,500 {1_500 / 2_000:.2%} 500" in hazards
    assert "The pool holds 500 tCO2e as of 2028-06-01" in hazards


def test_labels_disclosed_beside_the_credits(ledger: Runtime, tmp_path: Path) -> None:
    page = parse(write_report_html(ledger.engine, tmp_path / "r.html", AS_OF))
    labels = page.text("labels")
    assert f"CCP-I biochar kiln pilot {SCRIPT} icvcm-ccp icvcm-ccp 2024" in labels
    assert "2025-01-01 80,000" in labels
    assert f"{SCRIPT} CCP-I 80,000 0 1,000 0" in page.text("exposure-by-project")
    assert "Ridge 100,000 0 0 55,000" in page.text("exposure-by-project")
    assert page.text("labelled").startswith("Labelled credits 80,000 tCO2e")


def test_known_at_hides_what_was_recorded_later(runtime: Runtime, tmp_path: Path) -> None:
    app = runtime.app
    c = app.issue(program="carb-forest", project="Ridge", quantity=100_000, buffer=5_000,
                  on=date(2025, 6, 1), vintage_year=2025)
    runtime.refresh()
    time.sleep(0.01)  # record times are strictly ordered around the cut
    cut = datetime.now(UTC)
    time.sleep(0.01)
    app.record_reversal(c, date(2027, 3, 1), 55_000, "wildfire")
    runtime.refresh()

    then = parse(write_report_html(runtime.engine, tmp_path / "then.html", AS_OF, known_at=cut))
    assert "carb-forest 5,000 0 0 0 Covered" in then.text("dues")
    assert "uncovered" not in then.texts
    now = parse(write_report_html(runtime.engine, tmp_path / "now.html", AS_OF))
    assert "Owes 50,000 more than it holds" in now.text("dues")


def test_ledger_text_is_inert(ledger: Runtime, tmp_path: Path) -> None:
    ledger.app.issue(program="icvcm-ccp", project="P", quantity=5, buffer=1,
                     on=date(2025, 1, 1), pool="<img src=x onerror=alert(1)>")
    path = write_report_html(ledger.engine, tmp_path / "r.html", AS_OF, all_runs(ledger))
    html = path.read_text(encoding="utf-8")
    page = parse(path)

    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert page.scripts == 0 and page.images == []
    assert 'href="http://evil.example' not in html
    assert f"{FORMULA} 10,000 0 0 0" in page.text("exposure-by-project")


def test_empty_ledger(runtime: Runtime, tmp_path: Path) -> None:
    files = write_report_files(runtime.engine, tmp_path / "empty", AS_OF)
    assert files.index == tmp_path / "empty" / "index.html"
    page = parse(files.index)
    assert page.text("exposure").startswith("Exposure 0 tCO2e")
    assert page.text("coverage").startswith("Coverage ratio —")
    assert "Nothing recorded." in page.text("runoff")
    assert "No stress test recorded." in page.text("stress")
    assert "No credits carry a label." in page.text("labels")


def test_report_command(ledger: Runtime, db_url: str, tmp_path: Path) -> None:
    out = tmp_path / "trustees.html"
    result = CliRunner().invoke(
        cli, ["--db", db_url, "report", "--out", str(out), "--as-of", "2028-06-01", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["report"] == str(out) and data["bytes"] == out.stat().st_size
    page = parse(out)
    assert page.text("stress-2").startswith("Pool carb-forest: run ST1")  # the CLI reads runs
    assert "Owes 50,000 more than it holds" in page.text("dues")

    folder = tmp_path / "trustees"
    plain = CliRunner().invoke(cli, ["--db", db_url, "report", "--out", str(folder),
                                     "--as-of", "2028-06-01"])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() == str(folder / "index.html")
    assert [p.name for p in folder.iterdir()] == ["index.html"]

    bad = CliRunner().invoke(cli, ["--db", db_url, "report", "--out", str(out),
                                   "--as-of", "2028-02-30"])
    assert bad.exit_code == 2 and "as-of" in bad.output
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    clash = CliRunner().invoke(cli, ["--db", db_url, "report", "--out", str(not_a_folder)])
    assert clash.exit_code == 2 and "out:" in clash.output
    missing = CliRunner().invoke(cli, ["--db", db_url, "report", "--out",
                                       str(tmp_path / "nowhere" / "r.html")])
    assert missing.exit_code == 2 and "out:" in missing.output


# ---------------------------------------------------------------------- a real browser

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
WIDTH = 1280


def browser() -> tuple[str, str]:
    """Chromium and its driver from the system's packages, or skip saying why."""
    found = next((shutil.which(b) for b in CHROMIUM if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    if not found or not driver:
        pytest.skip("Chromium and chromedriver are not installed (.ci/run installs the "
                    "system packages chromium and chromium-driver)")
    return found, driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def webdriver(base: str, method: str, path: str, body: Any = None) -> Any:
    """One W3C WebDriver call (plain HTTP JSON: no client library needed)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())["value"]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


PROBE = """
const imgs = Array.from(document.images).map(i => i.complete && i.naturalWidth > 0);
const svgs = Array.from(document.querySelectorAll('svg')).map(s => {
  const r = s.getBoundingClientRect(); return [s.id, r.width, r.height]; });
return {imgs: imgs, svgs: svgs, height: document.documentElement.scrollHeight,
        width: document.documentElement.scrollWidth, title: document.title,
        flags: document.querySelectorAll('.flag').length};
"""


def test_report_renders_in_chromium(sqlite_url: str, tmp_path: Path) -> None:
    chromium, driver = browser()
    rt = Runtime(Settings(db=sqlite_url))
    try:
        build_ledger(rt)
        record_runs(rt)
        rt.refresh()
        page_path = write_report_html(rt.engine, tmp_path / "report.html", AS_OF, all_runs(rt))
    finally:
        rt.close()
    port = free_port()
    log = (tmp_path / "chromedriver.log").open("w")
    server = subprocess.Popen([driver, f"--port={port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                webdriver(base, "GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={WIDTH},900"]
        session = webdriver(base, "POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args}}}})["sessionId"]
        s = f"/session/{session}"
        try:
            webdriver(base, "POST", s + "/url", {"url": page_path.as_uri()})
            probe = webdriver(base, "POST", s + "/execute/sync", {"script": PROBE, "args": []})
            shot = webdriver(base, "POST", s + "/goog/cdp/execute", {
                "cmd": "Page.captureScreenshot",
                "params": {"format": "png", "captureBeyondViewport": True}})
        finally:
            webdriver(base, "DELETE", s)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    assert probe["title"] == "Permanence report as of 2028-06-01"
    assert all(probe["imgs"])  # no broken image (there are none at all)
    assert len(probe["svgs"]) >= 7
    for ident, width, height in probe["svgs"]:
        assert width > 300 and height > 100, (ident, width, height)
    assert probe["flags"] == 1  # carb-forest, and only it
    assert probe["width"] <= WIDTH  # nothing forces a sideways scroll
    data = base64.b64decode(shot["data"])
    target = Path(os.environ.get("PERMANENCE_REPORT_SHOT", tmp_path / "report.png"))
    target.write_bytes(data)
    width, height = png_size(data)
    assert width == probe["width"] and WIDTH - 40 <= width <= WIDTH  # less a scrollbar
    assert height == probe["height"] and height > 3_000  # the whole page, charts included
    assert len(data) > 100_000  # a page of charts and tables, not a blank


def test_stored_keys_in_words_old_and_new() -> None:
    """Keys the report knows read as words; keys it does not know (a newer engine's) still
    read as words, never as a Python name; years are not quantities."""
    from projections.report_text import rows, when

    found = {key: (name, shown) for key, name, shown in rows({
        "p_exhausted": 0.0123, "var": {"0.995": 18_000.0}, "first_year": 2027,
        "one_year_var": {"0.995": 4_200.0}, "exhausted_when": "balance reached",
        "p_ruin_in_a_year": 0.004, "within_target": False, "exact_p_exhausted": None,
        "p_exhausted_by_year": [0.1, 0.2] * 10})}
    assert found["p_exhausted"] == ("Probability the buffer runs out within the horizon",
                                    "1.23%")
    assert found["var.0.995"][1] == "18,000" and "99.5%" in found["var.0.995"][0]
    assert found["first_year"] == ("First year replayed", "2027")
    assert found["one_year_var.0.995"] == ("One year VaR at 99.5%", "4,200")
    assert found["exhausted_when"] == ("Exhausted when", "balance reached")
    assert found["p_ruin_in_a_year"] == ("Probability ruin in a year", "0.40%")
    assert found["within_target"][1] == "no" and found["exact_p_exhausted"][1] == "—"
    assert "p_exhausted_by_year" not in found  # a series: drawn, not listed
    assert when("2026-12-01T03:37:12.123456+00:00") == "2026-12-01 03:37 UTC"
    assert when("2026-12-01T05:37:12.5+02:00") == "2026-12-01 03:37 UTC"
    assert when("2026-12-01") == "2026-12-01"


def test_the_flat_summary_of_the_risk_service_still_renders(
    ledger: Runtime, tmp_path: Path
) -> None:
    from risk.service import latest_stress_summary

    summary = latest_stress_summary(ledger.app, ["carb-forest"], as_of=AS_OF)
    assert summary is not None
    page = parse(write_report_html(ledger.engine, tmp_path / "r.html", AS_OF, summary))
    carb = page.text("stress-1")
    assert carb.startswith("Pool carb-forest: run ST1")
    assert "Probability the buffer runs out within the horizon 25.00%" in carb
    assert "Simulated futures 1,000" in carb
