"""``permanence stress-test`` and its record: the stylised pool against its closed form, pool
runs recorded as ``StressTestRun`` events, the HTTP face, and the California backtest.

California (domain.md section 6; Badgley et al. 2022): a carb-forest pool of 31.0 million
buffer credits from six vintages (2013-2016). Wildfires between 2015 and 2021 reverse
5.68 million credits (the yearly split is illustrative, the total is the record's), each
compensated by cancelling buffer credits. Replayed against the 31.0 million, the fires
consumed 5.68 / 31.0 = 18.3% of the pool, and at least 95% of a fire allocation of 5.95
million (with 6.0 million it would be 94.7%: see tests/unit/test_stress.py).
"""

from __future__ import annotations

import json
import math
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ledger.errors import InvalidCommand
from permanence.cli.main import app as cli
from permanence.config import Settings
from permanence.http import stress as http_stress
from permanence.http.app import create_app
from permanence.runtime import Runtime
from permanence.tokens import create_token
from projections import queries
from projections.report import write_report_files
from risk.record import StressTest, StressTestRun, stress_test_id
from risk.service import latest_stress_summary, latest_stress_tests, record_stress_test
from risk.spec import StressSpec
from risk.stress_test import run_stress_test
from tests.support import running

PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def on_db(db: str, *args: str) -> Any:
    return invoke("--db", db, *args)


def event_count(db: str) -> int:
    rt = Runtime(Settings(db=db))
    try:
        return rt.app.recorder.max_notification_id() or 0
    finally:
        rt.close()


def exhaustion_probability(pool: int, loss: int, p: float, years: int) -> float:
    """P(K * L > N) for K ~ Binomial(T, p) events: exhausted means losing MORE than the pool,
    so at least floor(N/L) + 1 events (worked independently of the engine)."""
    needed = pool // loss + 1
    return math.fsum(math.comb(years, k) * p**k * (1 - p) ** (years - k)
                     for k in range(needed, years + 1))


# ---------------------------------------------------------------------- stylised pool

STYLISED = [
    # N credits, L per event, P per year, T years: 4 events exhaust the first, 11 the second
    # (10 events lose exactly the 1,000 credits held: that is not exhaustion)
    (100, 30, 0.10, 30),
    (1_000, 100, 0.08, 100),
]


@pytest.mark.parametrize(("pool", "loss", "p", "years"), STYLISED)
def test_stylised_pool_matches_the_binomial_closed_form(
    pool: int, loss: int, p: float, years: int
) -> None:
    scenarios = 20_000
    out = invoke("stress-test", "--model", "stylised", "--pool-size", str(pool),
                 "--event-loss", str(loss), "--annual-probability", str(p),
                 "--horizon", str(years), "--scenarios", str(scenarios), "--seed", "11", "--json")

    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    exact = exhaustion_probability(pool, loss, p, years)
    error = math.sqrt(exact * (1 - exact) / scenarios)
    assert 0.05 < exact < 0.95  # a test with power either way
    assert abs(data["p_exhausted"] - exact) <= 4 * error
    assert data["exact_p_exhausted"] == pytest.approx(exact, rel=1e-9)
    half = years // 2
    exact_half = exhaustion_probability(pool, loss, p, half)
    half_error = math.sqrt(max(exact_half * (1 - exact_half), 1e-12) / scenarios)
    assert abs(data["p_exhausted_by_year"][half - 1] - exact_half) <= 4 * half_error + 1e-12
    assert len(data["p_exhausted_by_year"]) == years
    assert data["horizon_expected_loss"] == pytest.approx(years * p * loss, rel=0.05)
    assert set(data["horizon_loss_quantile"]) == set(data["horizon_expected_shortfall"]) == {
        "0.995"}
    assert data["horizon_loss_quantile"]["0.995"] <= data["horizon_expected_shortfall"]["0.995"]
    # One year's loss is L with probability p (well above 0.5%), else 0: the worst year in
    # 200 loses L, and so does every year in the worst 0.5%.
    assert data["one_year_var"] == {"0.995": loss}
    assert data["one_year_expected_shortfall"] == {"0.995": loss}
    assert data["one_year_expected_loss"] == pytest.approx(p * loss, rel=0.1)
    assert "strictly greater" in data["definitions"]["exhausted"]
    assert "year 1" in data["definitions"]["one_year_var"]
    assert data["recorded"] is None


def test_same_seed_gives_identical_json() -> None:
    args = ["stress-test", "--model", "stylised", "--pool-size", "500", "--event-loss", "60",
            "--annual-probability", "0.07", "--horizon", "60", "--scenarios", "3000",
            "--level", "0.9", "--level", "0.995", "--json"]
    first = invoke(*args, "--seed", "5")
    second = invoke(*args, "--seed", "5")
    other = invoke(*args, "--seed", "6")
    assert first.exit_code == second.exit_code == other.exit_code == 0
    assert first.stdout == second.stdout
    assert first.stdout != other.stdout
    assert set(json.loads(first.stdout)["one_year_var"]) == {"0.9", "0.995"}


# ---------------------------------------------------------------------- a pool run, recorded


@pytest.fixture
def small_pool(db_url: str) -> Iterator[str]:
    """Three projects in the icvcm-ccp pool; one wildfire compensated from the buffer."""
    rt = Runtime(Settings(db=db_url))
    try:
        app = rt.app
        a = app.issue(program="icvcm-ccp", project="Mangrove A", quantity=80_000, buffer=20_000,
                      on=date(2025, 1, 1), vintage_year=2024)
        app.issue(program="icvcm-ccp", project="Forest B", quantity=40_000, buffer=10_000,
                  on=date(2025, 6, 1), vintage_year=2024)
        app.issue(program="icvcm-ccp", project="Soil C", quantity=20_000, buffer=5_000,
                  on=date(2026, 1, 1), vintage_year=2025)
        app.record_reversal(a, date(2027, 3, 1), 2_000, "wildfire")
        app.compensate(a, "R1", "buffer", 2_000, date(2027, 4, 1))
    finally:
        rt.close()
    yield db_url


def test_a_pool_run_is_recorded_listed_and_plotted(small_pool: str, tmp_path: Path) -> None:
    db = small_pool
    before = event_count(db)
    plot = tmp_path / "ruin.png"

    out = on_db(db, "stress-test", "--pool", "icvcm-ccp", "--as-of", "2028-01-01",
                "--model", "catastrophe", "--scenarios", "2000", "--horizon", "40",
                "--seed", "3", "--target-ruin", "0.05", "--plot", str(plot), "--json")

    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["recorded"] == "ST1"
    assert plot.read_bytes()[:8] == PNG
    figures = data["parameters"]["pool_figures"]
    assert figures["n_projects"] == 3 and figures["total_exposure"] == 140_000
    assert figures["buffer_balance"] == 35_000 - 2_000
    assert figures["projects_on_profile_default"] == 3
    assert data["current_buffer_rate"] == pytest.approx(33_000 / 140_000)
    assert 0 <= data["required_contribution_rate"] <= 1
    assert data["within_target"] == (data["p_exhausted"] <= 0.05)
    assert event_count(db) == before + 1

    listed = json.loads(on_db(db, "stress-tests", "--pool", "icvcm-ccp", "--json").stdout)
    assert [r["run_id"] for r in listed["runs"]] == ["ST1"]
    run = listed["runs"][0]
    assert run["model"] == "catastrophe" and run["on"] == "2028-01-01"
    assert run["recorded_by"] == "cli"
    assert run["parameters"]["seed"] == 3 and run["parameters"]["scenarios"] == 2000
    assert run["parameters"]["catastrophe"]["annual_probability"] == 0.02
    assert run["results"]["p_exhausted"] == data["p_exhausted"]
    for key in ("one_year_var", "one_year_expected_shortfall", "horizon_loss_quantile",
                "horizon_expected_shortfall", "p_exhausted_by_year", "loss_histogram",
                "definitions"):
        assert run["results"][key] == data[key], key
    assert len(run["results"]["p_exhausted_by_year"]) == 40
    assert sum(run["results"]["loss_histogram"]["counts"]) == 2000

    # the projections still follow the log past the stress-test record
    rt = Runtime(Settings(db=db))
    try:
        rt.refresh()
        assert rt.projector.lag() == 0
        assert queries.buffer(rt.engine, date(2028, 1, 1), "icvcm-ccp")["balance"] == 33_000
    finally:
        rt.close()

    again = on_db(db, "stress-test", "--pool", "icvcm-ccp", "--as-of", "2028-01-01",
                  "--scenarios", "500", "--no-record", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["recorded"] is None
    assert event_count(db) == before + 1


def test_the_record_reaches_the_report_and_the_api(small_pool: str, tmp_path: Path) -> None:
    db = small_pool
    assert on_db(db, "stress-test", "--as-of", "2028-01-01", "--scenarios", "1000",
                 "--horizon", "30").exit_code == 0  # the ledger's only pool
    rt = Runtime(Settings(db=db))
    try:
        summary = latest_stress_summary(rt.app, queries.pools(rt.engine))
        assert summary is not None
        assert (summary["pool"], summary["run_id"], summary["model"]) == ("icvcm-ccp", "ST1",
                                                                          "independent")
        assert summary["scenarios"] == 1000 and "p_exhausted" in summary
        assert summary["next_due"] == "2033-01-01"  # at least every five years
        assert latest_stress_summary(rt.app, ["icvcm-ccp"], as_of=date(2027, 12, 31)) is None
        assert "p_exhausted_by_year" not in summary  # per-year series stay in the listing
        files = write_report_files(rt.engine, tmp_path / "report", date(2028, 1, 1), summary)
        page = files.index.read_text(encoding="utf-8")
        assert "No stress test recorded" not in page and "p_exhausted" in page

        with TestClient(create_app(Settings(db=db), runtime=rt)) as client:
            # recording is a write: it needs a token (a trustee's will do)
            token, _ = create_token(rt.engine, "desk", "trustee")
            client.headers["Authorization"] = f"Bearer {token}"
            posted = client.post("/stress-test?record=true", json={
                "pool": "icvcm-ccp", "as_of": "2029-01-01", "model": "rising",
                "scenarios": 500, "horizon": 20, "seed": 9, "hazard_trend": 0.05})
            assert posted.status_code == 200, posted.text
            assert posted.json()["recorded"] == "ST2"
            got = client.get("/stress-test", params={
                "pool": "icvcm-ccp", "as_of": "2029-01-01", "model": "rising",
                "scenarios": 500, "horizon": 20, "seed": 9, "hazard_trend": 0.05})
            assert got.status_code == 200
            assert got.json()["recorded"] is None
            assert got.json()["p_exhausted"] == posted.json()["p_exhausted"]
            listing = client.get("/pools/icvcm-ccp/stress-tests").json()
            assert [r["run_id"] for r in listing["runs"]] == ["ST2", "ST1"]
            assert listing["runs"][0]["recorded_by"] == "token:desk"
            assert listing["runs"][0]["parameters"]["assumptions"]["hazard_trend"] == 0.05
            assert client.get("/pools/nowhere/stress-tests").status_code == 404
            assert client.get("/stress-test", params={"pool": "nowhere"}).status_code == 404
            bad = client.get("/stress-test", params={"annual_probability": 2, "model": "stylised",
                                                     "pool_size": 10, "event_loss": 1})
            assert bad.status_code == 422 and "annual_probability" in str(bad.json()["detail"])
    finally:
        rt.close()


# ---------------------------------------------------------------------- the California record

BUFFERS = {2013: 5_000_000, 2014: 5_500_000, 2015: 4_500_000, 2016: 6_000_000,
           2017: 5_000_000, 2018: 5_000_000}  # issuance year -> buffer contribution
FIRES = [  # (date, issuance year of the burnt vintage, credits reversed)
    (date(2015, 8, 1), 2013, 310_000),
    (date(2017, 10, 9), 2014, 140_000),
    (date(2018, 11, 8), 2015, 560_000),
    (date(2020, 8, 16), 2016, 3_970_000),
    (date(2021, 7, 14), 2013, 700_000),
]


def test_california_backtest_on_the_ledger(sqlite_url: str) -> None:
    assert sum(BUFFERS.values()) == 31_000_000 and sum(q for *_, q in FIRES) == 5_680_000
    rt = Runtime(Settings(db=sqlite_url))
    try:
        ids = {year: rt.app.issue(program="carb-forest", project=f"CAFR-{year}",
                                  quantity=buffer * 5, buffer=buffer, on=date(year, 3, 1),
                                  vintage_year=year - 1)
               for year, buffer in BUFFERS.items()}
        for day, year, quantity in FIRES:
            reversal = rt.app.record_reversal(ids[year], day, quantity, "wildfire")
            assert reversal["classification"] == "unavoidable"
            rt.app.compensate(ids[year], reversal["reversal_id"], "buffer", quantity,
                              date(day.year, 12, 31))
        balance = queries.buffer(rt.engine, date(2022, 12, 31), "carb-forest")
        assert (balance["contributions"], balance["cancelled"]) == (31_000_000, 5_680_000)
    finally:
        rt.close()

    out = on_db(sqlite_url, "stress-test", "--pool", "carb-forest", "--as-of", "2022-12-31",
                "--model", "backtest", "--allocation", "wildfire=5950000", "--json")

    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    fire = data["allocations"]["wildfire"]
    assert fire["losses"] == 5_680_000 and fire["share_consumed"] >= 0.95
    assert data["balance"] == 31_000_000 and data["total_loss"] == 5_680_000
    assert data["share_of_pool_consumed"] == pytest.approx(0.1832, abs=5e-4)  # about 18%
    assert data["first_year"] == 2015 and data["horizon"] == 7  # under ten years
    assert data["exhausted_year"] is None and data["exhausted_in"] is None
    assert data["losses_by_year"] == [310_000, 0, 140_000, 560_000, 0, 3_970_000, 700_000]
    assert data["recorded"] == "ST1"
    text = on_db(sqlite_url, "stress-test", "--pool", "carb-forest", "--as-of", "2022-12-31",
                 "--model", "backtest", "--allocation", "wildfire=5950000", "--no-record")
    assert "18.3% of the pool" in text.stdout and "wildfire: 5,680,000 of 5,950,000" in text.stdout
    rt = Runtime(Settings(db=sqlite_url))
    try:
        (run,) = latest_stress_tests(rt.app, "carb-forest")
        assert run["results"]["allocations"]["wildfire"]["share_consumed"] == fire["share_consumed"]
    finally:
        rt.close()


# ---------------------------------------------------------------------- bad input

BAD = [
    (["--model", "stylised", "--pool-size", "100", "--event-loss", "10",
      "--annual-probability", "1.5"], "annual_probability"),
    (["--model", "stylised", "--pool-size", "100", "--event-loss", "10",
      "--annual-probability", "0.1", "--scenarios", "-5"], "scenarios"),
    (["--model", "stylised", "--pool-size", "100", "--annual-probability", "0.1"], "event-loss"),
    (["--pool", "atlantis"], "no pool named 'atlantis'"),
    (["--pool", "icvcm-ccp", "--scenarios", "0"], "scenarios"),
    (["--pool", "icvcm-ccp", "--level", "1.5"], "level"),
    (["--pool", "icvcm-ccp", "--default-probability", "-0.1"], "default_probability"),
    (["--pool", "icvcm-ccp", "--model", "backtest", "--allocation", "wildfire"], "allocation"),
    (["--pool", "icvcm-ccp", "--as-of", "2028-02-30"], "as-of"),
    (["--pool", "icvcm-ccp", "--plot", "/nonexistent-folder/ruin.png"], "plot"),
]


@pytest.mark.parametrize(("args", "needle"), BAD, ids=[n for _, n in BAD])
def test_bad_input_exits_2_with_one_line(
    sqlite_url: str, args: list[str], needle: str
) -> None:
    rt = Runtime(Settings(db=sqlite_url))
    try:
        rt.app.issue(program="icvcm-ccp", project="P", quantity=1_000, buffer=250,
                     on=date(2025, 1, 1))
    finally:
        rt.close()
    before = event_count(sqlite_url)

    out = on_db(sqlite_url, "stress-test", *args)

    assert out.exit_code == 2, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out.stderr
    assert event_count(sqlite_url) == before


@pytest.mark.parametrize(("args", "choices"), [
    (["--model", "lognormal"], ["independent", "catastrophe", "rising", "default", "combined",
                                "backtest", "stylised"]),
    (["--region-by", "country"], ["program", "project"]),
])
def test_choices_are_validated_and_listed_in_full(
    sqlite_url: str, args: list[str], choices: list[str]
) -> None:
    out = on_db(sqlite_url, "stress-test", "--pool", "icvcm-ccp", *args)
    assert out.exit_code == 2
    [line] = out.stderr.strip().splitlines()  # one line naming the option and every choice
    assert line.startswith(f"error: {args[0].lstrip('-')}: '{args[1]}' is not one of")
    assert all(f"'{choice}'" in line for choice in choices)
    shown = invoke("stress-test", "--help")
    assert shown.exit_code == 0
    text = " ".join(shown.stdout.replace("│", " ").split())
    for choice in choices:
        assert choice in text, choice


def test_a_pool_with_no_exposure_on_the_date_is_rejected(sqlite_url: str) -> None:
    rt = Runtime(Settings(db=sqlite_url))
    try:
        rt.app.issue(program="icvcm-ccp", project="P", quantity=1_000, buffer=250,
                     on=date(2025, 1, 1))
    finally:
        rt.close()
    out = on_db(sqlite_url, "stress-test", "--pool", "icvcm-ccp", "--as-of", "2024-01-01")
    assert out.exit_code == 1 and "bears no exposure on 2024-01-01" in out.stderr


# ---------------------------------------------------------------------- the record itself


def test_one_stream_per_pool_one_event_per_run() -> None:
    first = StressTest.first_run("carb-forest", date(2025, 1, 1), "independent",
                                 {"seed": 1}, {"p_exhausted": 0.1, "tail": math.inf})
    assert first.id == stress_test_id("carb-forest") != stress_test_id("verra-vcs")
    assert first.record_run(date(2030, 1, 1), "backtest", {}, {"total_loss": 5}) == "ST2"
    events = [e for e in first.collect_events() if isinstance(e, StressTestRun)]
    assert len(events) == 2
    assert [e.run_id for e in events] == ["ST1", "ST2"]
    assert events[0].results["tail"] is None  # JSON has no infinity
    replayed = None
    for event in events:
        replayed = event.mutate(replayed)
    assert isinstance(replayed, StressTest) and replayed.version == 2
    assert [r["run_id"] for r in replayed.listing()] == ["ST2", "ST1"]
    assert replayed.next_due(5) == date(2035, 1, 1)
    with pytest.raises(InvalidCommand, match="results"):
        first.record_run(date(2031, 1, 1), "independent", {}, {})
    with pytest.raises(InvalidCommand, match="pool"):
        StressTest.first_run(" ", date(2025, 1, 1), "independent", {}, {"p": 1.0})
    with pytest.raises(InvalidCommand, match="not a JSON value"):
        first.record_run(date(2031, 1, 1), "independent", {"when": date(2031, 1, 1)}, {"p": 1})


# ---------------------------------------------------------------------- what a user sees


STYLISED_ARGS = ["stress-test", "--model", "stylised", "--pool-size", "100", "--event-loss", "30",
                 "--annual-probability", "0.1", "--scenarios", "2000", "--horizon", "10"]


def test_human_output_says_what_each_figure_measures() -> None:
    out = invoke(*STYLISED_ARGS, "--level", "0.9", "--level", "0.995")
    assert out.exit_code == 0, out.output
    text = out.stdout
    assert "exhausted: cumulative loss greater than the balance (a loss equal to it is not)" in text
    assert "years numbered from 1" in text
    assert "P(exhausted within 10 years)" in text
    assert "loss in one year (year 1)" in text and "VaR 99.5% (Solvency II) 30;" in text
    assert "VaR 90.0% " in text and text.count("Solvency II") == 1  # 99.5% is Solvency II's
    assert "loss over all 10 years" in text and "99.5% quantile" in text
    assert text.count("expected shortfall") == 4  # beside each figure, at each level
    assert "{" not in text and "'" not in text  # no Python reprs


def _on_a_terminal(*extra: str) -> tuple[subprocess.CompletedProcess[bytes], str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout piped); return what the terminal got."""
    try:
        primary, secondary = pty.openpty()
    except OSError as e:  # a container without /dev/ptmx
        pytest.skip(f"no pseudo-terminal on this machine: {e}")
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120"}
    try:
        done = subprocess.run([sys.executable, "-m", "permanence.cli", *STYLISED_ARGS, *extra],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary,
                              env=env, timeout=300, check=False)
    finally:
        os.close(secondary)
    seen = []
    while True:
        try:
            data = os.read(primary, 65_536)
        except OSError:  # the terminal's other end is closed: all read
            break
        if not data:
            break
        seen.append(data)
    os.close(primary)
    return done, b"".join(seen).decode("utf-8", errors="replace")


def test_a_terminal_sees_progress_unless_quiet() -> None:
    shown, terminal = _on_a_terminal("--json")
    assert shown.returncode == 0
    assert "stress test" in terminal and "chunks" in terminal  # the bar and its count
    assert json.loads(shown.stdout)["scenarios"] == 2000  # the answer itself stays clean
    quiet, silent = _on_a_terminal("--json", "--quiet")
    assert quiet.returncode == 0 and silent.strip() == ""
    assert json.loads(quiet.stdout) == json.loads(shown.stdout)
    # not a terminal (the test runner's pipe): no bar either
    piped = invoke(*STYLISED_ARGS)
    assert piped.exit_code == 0 and "chunks" not in piped.stderr


def test_the_use_case_reports_progress_over_both_passes(small_pool: str) -> None:
    """With a target ruin probability, the rate search is a second pass, counted in the total."""
    rt = Runtime(Settings(db=small_pool))
    try:
        rt.refresh()
        spec = StressSpec.from_values({"pool": "icvcm-ccp", "as_of": "2028-01-01",
                                       "scenarios": 300, "horizon": 10, "target_ruin": 0.1})
        calls: list[tuple[int, int]] = []
        outcome = run_stress_test(spec, rt.engine, rt.app, rt.catalog,
                                  progress=lambda done, total: calls.append((done, total)))
    finally:
        rt.close()
    total = calls[-1][1]
    assert total % 2 == 0 and calls == [(done, total) for done in range(1, total + 1)]
    assert outcome.results["required_contribution_rate"] is not None
    assert not outcome.output.get("recorded")  # running alone records nothing


def test_the_api_validates_into_the_same_spec_and_maps_domain_errors(small_pool: str) -> None:
    """Query allocations parse as the CLI's; a rejected run is 400, an unknown pool 404."""
    rt = Runtime(Settings(db=small_pool))
    try:
        with TestClient(create_app(Settings(db=small_pool), runtime=rt)) as client:
            base = {"pool": "icvcm-ccp", "as_of": "2028-01-01", "model": "backtest"}
            got = client.get("/stress-test", params={**base, "allocation": "wildfire=4000"})
            assert got.status_code == 200, got.text
            data = got.json()
            assert data["allocations"]["wildfire"] == {
                "allocation": 4_000, "losses": 2_000, "share_consumed": 0.5}
            assert data["first_year"] == 2027 and data["exhausted_year"] is None
            assert "from 1" in data["definitions"]["years"]
            bad = client.get("/stress-test", params={**base, "allocation": "wildfire"})
            assert bad.status_code == 422 and "allocation" in bad.text
            late = client.get("/stress-test", params={**base, "since": "2028-01-01"})
            assert late.status_code == 400 and "since" in late.json()["detail"]
            unknown = client.get("/stress-test", params={**base, "pool": "atlantis"})
            assert unknown.status_code == 404 and "atlantis" in unknown.json()["detail"]
            run = client.get("/stress-test", params={"pool": "icvcm-ccp", "as_of": "2028-01-01",
                                                     "scenarios": 200, "horizon": 10})
            assert run.status_code == 200
            assert {"one_year_var", "horizon_loss_quantile", "one_year_expected_shortfall",
                    "horizon_expected_shortfall", "p_exhausted_by_year",
                    "loss_histogram"} <= set(run.json())
    finally:
        rt.close()


# ---------------------------------------------------------------------- typed answers


def schema_errors(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> list[str]:
    """Where ``instance`` breaks ``schema`` (which may refer to the document's components)."""
    root = {**schema, "components": document["components"]}
    return [f"{list(e.instance_path)}: {e.message}"
            for e in jsonschema_rs.Draft202012Validator(root).iter_errors(instance)]


def test_the_stress_routes_answers_and_errors_are_described_by_the_openapi_document(
    small_pool: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each stress route names its answer's schema and declares its errors as problems; real
    answers (pool models, the stylised pool, a backtest, a listing holding a run recorded by
    an older version) and real errors validate against the document, and typing the answers
    changes none of them: they equal what ``permanence stress-test --json`` prints."""
    db = small_pool
    rt = Runtime(Settings(db=db))
    try:
        # an older version's run: no one-year figures, its horizon quantile named "var"
        old_results = {"p_exhausted": 0.01, "var": {"0.995": 1_200.0}}
        record_stress_test(rt.app, "icvcm-ccp", date(2026, 1, 1),
                           {"model": "independent", "scenarios": 100}, old_results)
        token, _ = create_token(rt.engine, "desk", "trustee")
        with running(create_app(Settings(db=db), runtime=rt)) as client:
            client.headers["Authorization"] = f"Bearer {token}"
            document = client.get("/openapi.json").json()
            stress_paths = {(m, p) for p, item in document["paths"].items() for m, op
                            in item.items() if "stress" in op.get("tags", [])}
            assert stress_paths == {("get", "/stress-test"), ("post", "/stress-test"),
                                    ("get", "/pools/{pool}/stress-tests")}
            for method, path in stress_paths:
                schema = document["paths"][path][method]["responses"]["200"]["content"][
                    "application/json"]["schema"]
                assert set(schema) == {"$ref"}, (method, path, schema)  # a named model

            def answer(method: str, path: str, response: httpx.Response) -> dict[str, Any]:
                assert response.status_code == 200, response.text
                declared = document["paths"][path][method]["responses"]["200"]
                body: dict[str, Any] = response.json()
                errors = schema_errors(document, declared["content"]["application/json"][
                    "schema"], body)
                assert not errors, (method, path, errors)
                return body

            def problem(method: str, path: str, response: httpx.Response, status: int) -> str:
                assert response.status_code == status, response.text
                assert response.headers["content-type"] == "application/problem+json"
                declared = document["paths"][path][method]["responses"]
                assert str(status) in declared, (method, path, status)
                schema = declared[str(status)]["content"]["application/problem+json"]["schema"]
                assert not schema_errors(document, schema, response.json())
                assert response.json()["status"] == status
                return str(response.json()["detail"])

            pool = {"pool": "icvcm-ccp", "as_of": "2028-01-01"}
            combined = {**pool, "model": "combined", "scenarios": 300, "horizon": 12,
                        "seed": 4, "target_ruin": 0.5}
            backtest = {**pool, "model": "backtest", "allocation": {"wildfire": 4_000}}
            stylised = {"model": "stylised", "pool_size": 100, "event_loss": 30,
                        "annual_probability": 0.1, "scenarios": 500, "horizon": 20}
            posted = answer("post", "/stress-test", client.post("/stress-test", json=combined))
            assert posted["recorded"] == "ST2" and posted["model"] == "combined"
            replayed = answer("post", "/stress-test", client.post("/stress-test", json=backtest))
            assert replayed["recorded"] == "ST3" and replayed["losses"][0]["cause"] == "wildfire"
            got = answer("get", "/stress-test", client.get("/stress-test", params=combined))
            assert got == {**posted, "recorded": None}
            query = {**backtest, "allocation": "wildfire=4000"}
            assert answer("get", "/stress-test", client.get("/stress-test", params=query)) == {
                **replayed, "recorded": None}
            alone = answer("get", "/stress-test", client.get("/stress-test", params=stylised))
            assert "pool" not in alone and alone["exact_p_exhausted"] is not None

            # the same answers as the command line prints (which no model touches)
            def cli(*args: str) -> Any:
                out = on_db(db, *args)
                assert out.exit_code == 0, out.output
                return json.loads(out.stdout)

            assert got == cli("stress-test", "--pool", "icvcm-ccp", "--as-of", "2028-01-01",
                              "--model", "combined", "--scenarios", "300", "--horizon", "12",
                              "--seed", "4", "--target-ruin", "0.5", "--no-record", "--json")
            assert alone == cli("stress-test", "--model", "stylised", "--pool-size", "100",
                                "--event-loss", "30", "--annual-probability", "0.1",
                                "--scenarios", "500", "--horizon", "20", "--json")
            listing = answer("get", "/pools/{pool}/stress-tests",
                             client.get("/pools/icvcm-ccp/stress-tests"))
            assert listing == cli("stress-tests", "--pool", "icvcm-ccp", "--json")
            assert [r["run_id"] for r in listing["runs"]] == ["ST3", "ST2", "ST1"]
            assert listing["runs"][-1]["results"] == old_results  # nothing added, nothing lost
            assert listing["runs"][1]["results"]["one_year_var"] == posted["one_year_var"]

            # every error a stress route answers is a problem it declares
            assert "atlantis" in problem("get", "/stress-test", client.get(
                "/stress-test", params={**combined, "pool": "atlantis"}), 404)
            assert "atlantis" in problem("get", "/pools/{pool}/stress-tests",
                                         client.get("/pools/atlantis/stress-tests"), 404)
            assert "since" in problem("post", "/stress-test", client.post(
                "/stress-test", json={**backtest, "since": "2028-01-01"}), 400)
            assert "scenarios" in problem("post", "/stress-test", client.post(
                "/stress-test", json={**combined, "scenarios": 0}), 422)
            assert http_stress._slot.acquire(timeout=30)
            try:
                busy = client.get("/stress-test", params=combined)
            finally:
                http_stress._slot.release()
            assert "one at a time" in problem("get", "/stress-test", busy, 429)
            assert busy.headers["retry-after"] == str(http_stress.BUSY_RETRY_SECONDS)
            monkeypatch.setattr(http_stress, "TIME_LIMIT_SECONDS", 0.001)
            assert "time limit" in problem("post", "/stress-test", client.post(
                "/stress-test", json={**combined, "scenarios": 20_000, "horizon": 100}), 503)
        assert [r["run_id"] for r in latest_stress_tests(rt.app, "icvcm-ccp")] == [
            "ST3", "ST2", "ST1"]  # the stopped run recorded nothing
    finally:
        rt.close()
