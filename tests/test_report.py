"""The trustee report: figures as the queries give them, charts that exist, inert ledger text.

Ledger (worked by hand from domain.md section 4), on both backends:

- A: icvcm-ccp, project ``<script>alert(1)</script>``, issued 2025-01-01, Q = 80,000,
  B = 20,000 (period ends 2065-01-01). An avoidable harvest reversal of 1,000 on 2028-02-01,
  owed by the proponent.
- B: car-forest, project ``=HYPERLINK("http://evil.example","x")``, issued 2026-03-01,
  Q = 10,000, B = 2,000 (period ends 2126-03-01). A wildfire reversal of 1,500 on
  2027-06-01, compensated from the buffer on 2027-07-01.

As of 2028-06-01: exposure 90,000; due 1,000 (proponents 1,000, pools 0); buffer
22,000 - 1,500 = 20,500; coverage 20,500 / 90,000 = 22.8%; per pool icvcm-ccp 25.0%,
car-forest 500 / 10,000 = 5.0%.
"""

from __future__ import annotations

import json
import re
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

from typer.testing import CliRunner

from permanence.cli.main import app as cli
from permanence.runtime import Runtime
from projections.report import balance_points, write_report, write_report_files

AS_OF = date(2028, 6, 1)
SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("http://evil.example","x")'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def build_ledger(rt: Runtime) -> tuple[str, str]:
    a = rt.app.issue(program="icvcm-ccp", project=SCRIPT, quantity=80_000, buffer=20_000,
                     on=date(2025, 1, 1), vintage_year=2024)
    b = rt.app.issue(program="car-forest", project=FORMULA, quantity=10_000, buffer=2_000,
                     on=date(2026, 3, 1), vintage_year=2025)
    rt.app.record_reversal(b, date(2027, 6, 1), 1_500, "wildfire")
    rt.app.compensate(b, "R1", "buffer", 1_500, date(2027, 7, 1))
    rt.app.record_reversal(a, date(2028, 2, 1), 1_000, "harvest")
    return a, b


class Page(HTMLParser):
    """Collects image sources, script tags, and the text inside each element with an id."""

    VOID = frozenset({"img", "meta", "br", "hr", "link", "input"})

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.scripts = 0
        self.texts: dict[str, list[str]] = {}
        self._stack: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img":
            self.images.append(found["src"] or "")
        if tag == "script":
            self.scripts += 1
        if tag in self.VOID:
            return
        ident = found.get("id")
        if ident:
            self.texts.setdefault(ident, [])
        self._stack.append((tag, ident))

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self._stack:
            if ident:
                self.texts[ident].append(data)

    def text(self, ident: str) -> str:
        """The element's text, one space between text nodes (as a reader sees cells)."""
        return re.sub(r"\s+", " ", " ".join(self.texts[ident])).strip()


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_report_shows_the_figures_and_charts(runtime: Runtime, tmp_path: Path) -> None:
    build_ledger(runtime)
    out = tmp_path / "report"
    index = write_report(runtime.engine, out, AS_OF)

    assert index == out / "index.html"
    html = index.read_text(encoding="utf-8")
    # Headline figures, formatted as the page formats them.
    assert '<div class="value">90,000 <span class="unit">tCO2e</span></div>' in html
    assert '<div class="value">1,000 <span class="unit">tCO2e</span></div>' in html
    assert '<div class="detail">proponents 1,000 · pools 0</div>' in html
    assert '<div class="value">20,500 <span class="unit">tCO2e</span></div>' in html
    assert '<div class="value">22.8%</div>' in html
    page = parse(index)
    assert page.text("exposure").startswith("Exposure 90,000 tCO2e")
    assert page.text("balance").startswith("Buffer balance 20,500 tCO2e")
    assert page.text("coverage").startswith("Coverage ratio 22.8%")
    headline = page.text("headline")
    assert "car-forest 500 0 0 10,000 5.0% 2,000 1,500 0" in headline
    assert "icvcm-ccp 20,000 0 0 80,000 25.0% 20,000 0 0" in headline
    runoff = page.text("runoff")
    assert "2065 80,000" in runoff and "2126 10,000" in runoff
    assert "Total still to run off: 90,000 tCO2e" in runoff
    assert "2028-06-01 20,500 90,000 22.8%" in page.text("buffer-over-time")
    assert "2033-01-01 (projection) 20,500 90,000 22.8%" in page.text("buffer-over-time")
    assert "icvcm-ccp 80,000 0 1,000 0" in page.text("exposure-by-program")
    assert "car-forest 10,000 0 0 0" in page.text("exposure-by-program")
    assert "No stress test recorded." in page.text("stress")

    # Every chart the page references is next to it and is a real PNG.
    assert sorted(page.images) == ["buffer-balance.png", "exposure-by-bearer.png",
                                   "exposure-by-program.png", "runoff.png"]
    for src in page.images:
        assert not Path(src).is_absolute() and "/" not in src
        chart = out / src
        assert chart.read_bytes()[:8] == PNG_MAGIC, src
        assert chart.stat().st_size > 1_000
    # Nothing on the page needs the network.
    assert "http://" not in html.replace("http://evil.example", "")
    assert "https://" not in html


def test_ledger_text_is_inert(runtime: Runtime, tmp_path: Path) -> None:
    build_ledger(runtime)
    html = write_report(runtime.engine, tmp_path, AS_OF).read_text(encoding="utf-8")
    page = parse(tmp_path / "index.html")

    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert page.scripts == 0
    assert "=HYPERLINK(&quot;http://evil.example&quot;,&quot;x&quot;)" in html
    assert 'href="http://evil.example' not in html
    # Read as text, the names come back exactly as recorded.
    projects = page.text("exposure-by-project")
    assert f"{SCRIPT} 80,000 0 1,000 0" in projects
    assert f"{FORMULA} 10,000 0 0 0" in projects


def test_buffer_points_follow_the_queries(runtime: Runtime) -> None:
    build_ledger(runtime)
    assert balance_points(runtime.engine, AS_OF) == [
        (date(2025, 1, 1), 20_000, 80_000),
        (date(2026, 1, 1), 20_000, 80_000),
        (date(2027, 1, 1), 22_000, 90_000),
        (date(2028, 1, 1), 20_500, 90_000),
        (AS_OF, 20_500, 90_000),
        (date(2029, 1, 1), 20_500, 90_000),
        (date(2030, 1, 1), 20_500, 90_000),
        (date(2031, 1, 1), 20_500, 90_000),
        (date(2032, 1, 1), 20_500, 90_000),
        (date(2033, 1, 1), 20_500, 90_000),
    ]
    # Past A's period end its exposure is gone but the buffer it contributed remains.
    late = balance_points(runtime.engine, date(2065, 6, 1))
    assert (date(2065, 1, 1), 20_500, 10_000) in late
    assert (date(2064, 1, 1), 20_500, 90_000) in late


def test_svg_charts_and_a_stress_result(runtime: Runtime, tmp_path: Path) -> None:
    build_ledger(runtime)
    stress = {"model": "independent", "scenarios": 10_000, "horizon": 100,
              "p_exhausted": 0.0123, "expected_loss": 4_321.0,
              "var": {"0.995": 18_000.0}, "p_exhausted_by_year": [0.0] * 100,
              "parameters": {"note": SCRIPT}}
    files = write_report_files(runtime.engine, tmp_path, AS_OF, stress, chart_format="svg")

    assert [c.name for c in files.charts] == ["runoff.svg", "buffer-balance.svg",
                                             "exposure-by-program.svg", "exposure-by-bearer.svg"]
    for chart in files.charts:
        text = chart.read_text(encoding="utf-8")
        assert text.lstrip().startswith("<?xml") and "<svg" in text
    page = parse(files.index)
    assert sorted(page.images) == sorted(c.name for c in files.charts)
    stress_text = page.text("stress")
    assert "No stress test recorded" not in stress_text
    assert "model independent" in stress_text
    assert "scenarios 10,000" in stress_text
    assert "p_exhausted 0.0123" in stress_text
    assert "var 0.995 18,000" in stress_text
    assert "parameters note " + SCRIPT in stress_text
    assert SCRIPT not in files.index.read_text(encoding="utf-8")


def test_empty_ledger_report(runtime: Runtime, tmp_path: Path) -> None:
    files = write_report_files(runtime.engine, tmp_path / "empty", AS_OF)
    page = parse(files.index)
    assert page.text("exposure").startswith("Exposure 0 tCO2e")
    assert page.text("coverage").startswith("Coverage ratio —")
    assert "Nothing recorded." in page.text("runoff")
    for chart in files.charts:
        assert chart.read_bytes()[:8] == PNG_MAGIC


def test_report_command(runtime: Runtime, db_url: str, tmp_path: Path) -> None:
    build_ledger(runtime)
    out = tmp_path / "trustees"
    result = CliRunner().invoke(
        cli, ["--db", db_url, "report", "--out", str(out), "--as-of", "2028-06-01", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["report"] == str(out / "index.html")
    assert [Path(c).name for c in data["charts"]] == [
        "runoff.png", "buffer-balance.png", "exposure-by-program.png", "exposure-by-bearer.png"]
    assert all(Path(c).read_bytes()[:8] == PNG_MAGIC for c in data["charts"])
    assert parse(out / "index.html").text("exposure").startswith("Exposure 90,000 tCO2e")

    plain = CliRunner().invoke(cli, ["--db", db_url, "report", "--out", str(out),
                                     "--as-of", "2028-06-01"])
    assert plain.exit_code == 0, plain.output
    assert plain.stdout.strip() == str(out / "index.html")

    bad = CliRunner().invoke(cli, ["--db", db_url, "report", "--out", str(out),
                                   "--as-of", "2028-02-30"])
    assert bad.exit_code == 2
    assert "as-of" in bad.output
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    clash = CliRunner().invoke(cli, ["--db", db_url, "report", "--out", str(not_a_folder)])
    assert clash.exit_code == 2
    assert "out:" in clash.output
