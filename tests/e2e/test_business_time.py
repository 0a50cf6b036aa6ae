"""Business-time truth: facts recorded late, out of order or ahead of time, through the CLI
as a registry's operator types them, on both backends.

Each expected figure is worked out here from domain.md section 4 (calendar arithmetic in
the test itself), never read back from the code under test.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from ledger.errors import ProfileRejected
from ledger.profiles import parse_profile
from permanence.cli.main import app as cli
from permanence.config import Settings
from permanence.http.app import create_app
from permanence.runtime import Runtime
from tests.support import SRC, running

TODAY = "2026-11-30"
NOBODY = {"proponent": 0, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}


def owed(**by: int) -> dict[str, int]:
    return {**NOBODY, **by}


def run(db: str, *args: str, today: str = TODAY) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args], env={"PERMANENCE_TODAY": today})


def ok(db: str, *args: str, today: str = TODAY) -> Any:
    result = run(db, *args, "--json", today=today)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(db: str, *args: str, today: str = TODAY) -> str:
    """The one line a rejected command prints (exit 1, nothing written)."""
    before = events(db)
    result = run(db, *args, today=today)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert events(db) == before
    return lines[0]


def events(db: str) -> int:
    rt = Runtime(Settings(db=db))
    try:
        return rt.app.recorder.max_notification_id() or 0
    finally:
        rt.close()


def issue(db: str, program: str = "icvcm-ccp", *, quantity: int, buffer: int, on: str,
          project: str = "P", today: str = TODAY) -> str:
    vid: str = ok(db, "issue", "--program", program, "--project", project, "--quantity",
                  str(quantity), "--buffer", str(buffer), "--on", on, today=today)["vintage_id"]
    return vid


def plus_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def history(db: str, vid: str, *extra: str, today: str = TODAY) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = ok(db, "history", vid, *extra, today=today)["events"]
    return found


# ---------------------------------------------------------------------- lapses in business time


def test_a_late_verification_does_not_erase_the_lapse_that_arose_before_it(db_url: str) -> None:
    vid = issue(db_url, quantity=8_000, buffer=2_000, on="2015-03-01", project="LATE")
    ok(db_url, "verify", "--vintage", vid, "--on", "2025-06-01")
    swept = ok(db_url, "sweep")
    assert swept["as_of"] == TODAY and swept["lapses_recorded"] == 1
    # icvcm-ccp: due 5 years after issuance, no grace, not curable, 365-day deadline
    due = plus_years(date(2015, 3, 1), 5)
    lapse_on = due + timedelta(days=1)
    default_on = lapse_on + timedelta(days=365 + 1)
    shown = ok(db_url, "show", vid)
    [lapse] = shown["reversals"]
    assert (lapse["on"], lapse["quantity"], lapse["classification"]) == (
        lapse_on.isoformat(), 2_000, "avoidable")
    assert ok(db_url, "show", vid, "--as-of", lapse_on.isoformat())["due"] == owed(proponent=2_000)
    assert ok(db_url, "show", vid, "--as-of", default_on.isoformat())["due"] == owed(pool=2_000)
    assert shown["status"] == "lapsed"
    # the verification of 2025 cures nothing (icvcm-ccp), and the sweep records once
    assert ok(db_url, "sweep")["lapses_recorded"] == 0


def test_a_timely_verification_recorded_after_the_sweep_withdraws_the_lapse(db_url: str) -> None:
    vid = issue(db_url, quantity=8_000, buffer=2_000, on="2021-01-01")
    assert ok(db_url, "sweep")["lapses_recorded"] == 1
    lapse_on = plus_years(date(2021, 1, 1), 5) + timedelta(days=1)
    assert ok(db_url, "show", vid)["reversals"][0]["on"] == lapse_on.isoformat()
    assert ok(db_url, "liabilities")["due"] == owed(proponent=2_000)
    time.sleep(0.01)
    before_report = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    ok(db_url, "verify", "--vintage", vid, "--on", "2025-12-15")  # dated before the lapse

    trail = history(db_url, vid)
    withdrawn = [e for e in trail if e["event"] == "LapseWithdrawn"]
    assert len(withdrawn) == 1 and withdrawn[0]["on"] == lapse_on.isoformat()
    assert "2025-12-15" in withdrawn[0]["data"]["reason"]
    shown = ok(db_url, "show", vid)
    assert shown["reversals"] == [] and shown["due"] == NOBODY and shown["status"] == "monitored"
    assert shown["verification_due"] == plus_years(date(2025, 12, 15), 5).isoformat()
    assert ok(db_url, "liabilities")["due"] == NOBODY
    # what the ledger said before the report arrived still shows at that known_at
    assert ok(db_url, "liabilities", "--known-at", before_report)["due"] == owed(proponent=2_000)
    assert ok(db_url, "show", vid, "--known-at", before_report)["due"] == owed(proponent=2_000)
    check = run(db_url, "check")
    assert check.exit_code == 0, check.output
    assert ok(db_url, "sweep")["lapses_recorded"] == 0


def test_a_cancellation_dated_before_the_lapse_revises_its_amount(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2015-01-01")
    ok(db_url, "sweep")
    lapse_on = date(2020, 1, 2)
    assert ok(db_url, "show", vid)["reversals"][0]["quantity"] == 250
    ok(db_url, "cancel", "--vintage", vid, "--quantity", "601", "--on", "2019-06-01")
    # 399 of 1,000 still exposed on the lapse day: 250 x 399 / 1,000 = 99.75, rounded up
    [lapse] = ok(db_url, "show", vid)["reversals"]
    assert (lapse["on"], lapse["quantity"]) == (lapse_on.isoformat(), 100)
    assert [e["event"] for e in history(db_url, vid)][-1] == "LapseRevised"


def test_a_vintage_with_nothing_exposed_never_lapses(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2015-01-01")
    ok(db_url, "cancel", "--vintage", vid, "--quantity", "1000", "--on", "2016-01-01")
    assert ok(db_url, "sweep")["lapses_recorded"] == 0
    assert ok(db_url, "show", vid)["due"] == NOBODY


def test_a_curable_lapse_is_cured_as_of_the_verification_date(db_url: str) -> None:
    # verra-vcs: crediting-period clock, 5-year interval, curable, buffer held on lapse
    vid = issue(db_url, "verra-vcs", quantity=880, buffer=120, on="2015-01-01")
    ok(db_url, "sweep")
    lapse_on = date(2020, 1, 2)
    ok(db_url, "verify", "--vintage", vid, "--on", "2021-03-01")
    before = ok(db_url, "show", vid, "--as-of", "2021-02-28")
    assert before["due"] == owed(proponent=120) and before["on_hold"] == 120
    assert before["reversals"][0]["on"] == lapse_on.isoformat()
    after = ok(db_url, "show", vid, "--as-of", "2021-03-01")
    assert after["due"] == NOBODY and after["on_hold"] == 0
    assert after["reversals"][0]["cured_on"] == "2021-03-01"


# ---------------------------------------------------------------------- no future


def test_nothing_is_dated_after_today(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2024-01-01")
    line = refused(db_url, "sweep", "--as-of", "2031-01-01")
    assert "2031-01-01 is after today (2026-11-30)" in line and "simulate" in line
    for args in (
        ("reversal", "--vintage", vid, "--on", "2030-01-01", "--quantity", "5", "--cause", "wildfire"),
        ("issue", "--program", "icvcm-ccp", "--project", "F", "--quantity", "5", "--on", "2027-01-01"),
        ("retire", "--vintage", vid, "--quantity", "5", "--on", "2030-06-01"),
        ("verify", "--vintage", vid, "--on", "2026-12-01"),
    ):
        assert "after today" in refused(db_url, *args)
    rows = ok(db_url, "simulate", "--from", "2026-11-30", "--to", "2031-01-02", "--step", "1y")
    assert sum(r["lapses_recorded"] for r in rows) == 1  # looking ahead is simulate's job
    assert ok(db_url, "show", vid)["reversals"] == []  # on a copy


# ---------------------------------------------------------------------- the buffer


def test_the_buffer_never_goes_negative_and_the_pool_owes_its_shortfall(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2020-01-01")
    ok(db_url, "verify", "--vintage", vid, "--on", "2024-06-01")
    ok(db_url, "reversal", "--vintage", vid, "--on", "2022-01-01", "--quantity", "900",
       "--cause", "wildfire")
    ok(db_url, "compensate", "--vintage", vid, "--reversal", "R1", "--by", "buffer",
       "--quantity", "900", "--on", "2022-02-01")
    buf = ok(db_url, "buffer", "--as-of", "2022-02-01")
    assert (buf["balance"], buf["cancelled"], buf["shortfall"], buf["owed"]) == (0, 250, 650, 650)
    # (balance - owed) / exposure: (0 - 650) / 1,000
    assert buf["coverage_ratio"] == pytest.approx(-0.65)
    assert ok(db_url, "buffer", "--as-of", "2022-01-31")["balance"] == 250
    due = ok(db_url, "liabilities", "--as-of", "2022-02-01")
    assert due["due"] == owed(pool=650) and due["shortfall"] == 650
    with running(create_app(Settings(db=db_url, today=date(2026, 11, 30)))) as client:
        over_http = client.get("/buffer", params={"as_of": "2022-02-01"}).json()
        assert (over_http["balance"], over_http["shortfall"]) == (0, 650)
    out = Path(db_url).parent / "report" if "://" not in db_url else None
    if out is not None:
        ok(db_url, "report", "--out", str(out), "--as-of", "2022-02-01")
        page = (out / "index.html").read_text()
        assert "Shortfall" in page and "650" in page


def test_the_buffer_pays_an_avoidable_reversal_only_after_the_default(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2020-01-01")
    ok(db_url, "verify", "--vintage", vid, "--on", "2024-06-01")
    ok(db_url, "reversal", "--vintage", vid, "--on", "2022-01-01", "--quantity", "100",
       "--cause", "harvest")
    deadline = date(2022, 1, 1) + timedelta(days=365)
    line = refused(db_url, "compensate", "--vintage", vid, "--reversal", "R1", "--by", "buffer",
                   "--quantity", "100", "--on", deadline.isoformat())
    assert "only after the proponent's default" in line
    ok(db_url, "compensate", "--vintage", vid, "--reversal", "R1", "--by", "buffer",
       "--quantity", "100", "--on", (deadline + timedelta(days=1)).isoformat())
    assert ok(db_url, "show", vid)["due"] == NOBODY


# ---------------------------------------------------------------------- caps


def test_a_reversal_cannot_exceed_what_is_still_exposed(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2020-01-01")
    ok(db_url, "cancel", "--vintage", vid, "--quantity", "600", "--on", "2021-01-01")
    line = refused(db_url, "reversal", "--vintage", vid, "--on", "2022-01-01", "--quantity", "900",
                   "--cause", "wildfire")
    assert "exceeds the 400 t still exposed" in line
    ok(db_url, "reversal", "--vintage", vid, "--on", "2022-01-01", "--quantity", "300",
       "--cause", "wildfire")
    # a cancellation recorded later, dated before it, may not leave the reversal uncovered
    line = refused(db_url, "cancel", "--vintage", vid, "--quantity", "200", "--on", "2021-06-01")
    assert "would exceed the 200 t left exposed" in line


# ---------------------------------------------------------------------- transfer, fund, insurance


def test_after_a_transfer_to_a_fund_the_fund_owes_and_pays(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2020-01-01")
    ok(db_url, "verify", "--vintage", vid, "--on", "2024-06-01")
    ok(db_url, "transfer", "--vintage", vid, "--to", "PermaFund", "--kind", "fund",
       "--on", "2022-01-01")
    ok(db_url, "reversal", "--vintage", vid, "--on", "2023-01-01", "--quantity", "300",
       "--cause", "wildfire")
    assert ok(db_url, "show", vid)["due"] == owed(fund=300)
    assert "the fund" in refused(db_url, "compensate", "--vintage", vid, "--reversal", "R1",
                                 "--by", "buffer", "--quantity", "300", "--on", "2023-02-01")
    assert "insurer" in refused(db_url, "compensate", "--vintage", vid, "--reversal", "R1",
                                "--by", "insurance", "--quantity", "300", "--on", "2023-02-01")
    ok(db_url, "compensate", "--vintage", vid, "--reversal", "R1", "--by", "fund",
       "--quantity", "300", "--on", "2023-02-01")
    assert ok(db_url, "liabilities")["due"] == NOBODY
    by_bearer = ok(db_url, "liabilities", "--by", "bearer")
    assert by_bearer["transferred"] == {"PermaFund": 1_000} and by_bearer["exposure"] == 0


def test_a_transferred_monitoring_obligation_makes_the_lapse_the_transferees(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2015-01-01")
    ok(db_url, "transfer", "--vintage", vid, "--to", "State", "--kind", "jurisdiction",
       "--on", "2016-01-01", "--monitoring")
    ok(db_url, "sweep")
    shown = ok(db_url, "show", vid)
    assert shown["reversals"][0]["on"] == "2020-01-02"
    assert shown["due"] == owed(jurisdiction=250)
    ok(db_url, "compensate", "--vintage", vid, "--reversal", "L1", "--by", "jurisdiction",
       "--quantity", "250", "--on", "2021-01-01")
    assert ok(db_url, "show", vid)["due"] == NOBODY


def test_a_permanence_fund_takes_a_vintage_on_at_its_period_end_for_a_term(db_url: str) -> None:
    # icvcm-ccp under a 40-year issuance clock: issued 1980, the period ended 2020-01-01
    vid = issue(db_url, quantity=1_000, buffer=250, on="1980-01-01")
    line = refused(db_url, "transfer", "--vintage", vid, "--to", "PermaFund", "--on", "2021-01-01")
    assert "term" in line
    ok(db_url, "transfer", "--vintage", vid, "--to", "PermaFund", "--kind", "fund",
       "--on", "2021-01-01", "--term-years", "30")
    end = plus_years(date(2020, 1, 1), 30)
    bearer = ok(db_url, "liabilities", "--by", "bearer", "--as-of", "2022-01-01")
    assert bearer["transferred"] == {"PermaFund": 1_000} and bearer["exposure"] == 0
    assert ok(db_url, "liabilities", "--as-of", "2020-06-01")["transferred"] == {}
    ladder = ok(db_url, "runoff", "--as-of", "2022-01-01")
    assert ladder["years"] == [
        {"year": end.year, "exposure_ending": 1_000, "by_bearer": {"PermaFund": 1_000}}]
    ok(db_url, "reversal", "--vintage", vid, "--on", "2024-01-01", "--quantity", "100",
       "--cause", "wildfire")
    assert ok(db_url, "show", vid)["due"] == owed(fund=100)


def test_insurance_owes_up_to_its_limit_over_its_own_term(db_url: str) -> None:
    vid = issue(db_url, quantity=1_000, buffer=250, on="2020-01-01")
    ok(db_url, "verify", "--vintage", vid, "--on", "2024-06-01")
    ok(db_url, "insure", "--vintage", vid, "--insurer", "Re", "--from", "2021-01-01",
       "--to", "2070-12-31", "--limit", "500")  # past the period end, 2060
    ok(db_url, "reversal", "--vintage", vid, "--on", "2020-06-01", "--quantity", "50",
       "--cause", "storm")  # before the term: the pool's
    ok(db_url, "reversal", "--vintage", vid, "--on", "2022-01-01", "--quantity", "300",
       "--cause", "wildfire")
    ok(db_url, "reversal", "--vintage", vid, "--on", "2023-01-01", "--quantity", "400",
       "--cause", "wildfire")
    # the insurer owes 300 + 200 (its limit), the pool 50 + 200
    assert ok(db_url, "show", vid)["due"] == owed(insurer=500, pool=250)
    ok(db_url, "compensate", "--vintage", vid, "--reversal", "R3", "--by", "insurance",
       "--quantity", "200", "--on", "2023-03-01")
    assert ok(db_url, "show", vid)["due"] == owed(insurer=300, pool=250)
    assert ok(db_url, "show", vid, "--as-of", "2022-06-01")["due"] == owed(insurer=300, pool=50)


# ---------------------------------------------------------------------- both times


def test_every_figure_ignores_what_is_dated_after_its_as_of(db_url: str) -> None:
    today = "2031-01-01"
    vid = issue(db_url, quantity=1_000, buffer=250, on="2025-01-01", today=today)
    ok(db_url, "verify", "--vintage", vid, "--on", "2029-06-30", today=today)
    ok(db_url, "retire", "--vintage", vid, "--quantity", "100", "--on", "2030-01-01", today=today)
    shown = ok(db_url, "show", vid, "--as-of", "2026-01-01", today=today)
    assert shown["last_verified"] is None and shown["retired"] == 0
    assert shown["verification_due"] == "2030-01-01"
    later = ok(db_url, "show", vid, "--as-of", "2030-06-01", today=today)
    assert later["last_verified"] == "2029-06-30" and later["retired"] == 100
    trail = history(db_url, vid, "--as-of", "2026-01-01", today=today)
    assert [e["event"] for e in trail] == ["Issued"]


def test_runoff_answers_as_known_at_a_time_over_cli_and_http(db_url: str) -> None:
    a = issue(db_url, quantity=1_000, buffer=250, on="2020-01-01")
    time.sleep(0.01)
    known = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    ok(db_url, "cancel", "--vintage", a, "--quantity", "400", "--on", "2021-01-01")
    assert ok(db_url, "runoff", "--as-of", "2022-01-01")["total"] == 600
    assert ok(db_url, "runoff", "--as-of", "2022-01-01", "--known-at", known)["total"] == 1_000
    assert ok(db_url, "runoff", "--as-of", "2020-06-01")["total"] == 1_000  # cancelled later
    with running(create_app(Settings(db=db_url, today=date(2026, 11, 30)))) as client:
        now = client.get("/runoff", params={"as_of": "2022-01-01"}).json()
        then = client.get("/runoff", params={"as_of": "2022-01-01", "known_at": known}).json()
        assert (now["total"], then["total"]) == (600, 1_000)
        typo = client.get("/runoff", params={"as_of": "2022-01-01", "knownat": known})
        assert typo.status_code == 422 and "knownat" in typo.text
        assert client.get(f"/vintages/{a}", params={"as_of": "2022-01-01", "known_at": known}
                          ).json()["exposure"] == 1_000


# ---------------------------------------------------------------------- risk rules


def test_issuance_below_the_profiles_minimum_buffer_is_refused(db_url: str) -> None:
    line = refused(db_url, "issue", "--program", "verra-vcs", "--project", "V", "--quantity",
                   "950", "--buffer", "50", "--on", "2024-01-01")
    assert "withholds at least 12%" in line and "buffer" in line
    issue(db_url, "verra-vcs", quantity=880, buffer=120, on="2024-01-01")


def test_check_reports_a_buffer_below_the_latest_assessed_rate(db_url: str) -> None:
    vid = issue(db_url, quantity=900, buffer=100, on="2024-01-01", project="RISKY")
    rt = Runtime(Settings(db=db_url, today=date(2026, 11, 30)))
    try:
        rt.app.assess_risk([vid], date(2025, 1, 1), tool="t", tool_version="1", buffer_rate=0.2,
                           annual_probability=0.01, category_probabilities={})
    finally:
        rt.close()
    result = run(db_url, "check", "--json")
    assert result.exit_code == 1
    kinds = [f["kind"] for f in json.loads(result.stdout)["findings"]]
    assert kinds == ["buffer-below-assessed-rate"]


def test_a_ccp_profile_must_reassess_and_stress_test_every_five_years() -> None:
    base = json.loads((SRC / "ledger/profiles/icvcm-ccp.json").read_text())
    parse_profile(base, "icvcm-ccp.json")
    for rule in ("risk_reassessment_years", "stress_test_interval_years"):
        slow = {**base, "name": "slow", rule: {**base[rule], "value": 6}}
        with pytest.raises(ProfileRejected, match=rule):
            parse_profile(slow, "slow.json")


def test_a_verification_reminder_ends_when_the_verification_is_recorded(db_url: str) -> None:
    vid = issue(db_url, quantity=900, buffer=100, on="2021-12-01")  # due 2026-12-01
    ok(db_url, "sweep")
    assert [r["subject"] for r in ok(db_url, "reminders", "--kind", "verification_due")] == [vid]
    ok(db_url, "verify", "--vintage", vid, "--on", "2026-11-15")
    assert ok(db_url, "reminders", "--kind", "verification_due") == []
    ended = ok(db_url, "reminders", "--kind", "verification_due", "--all")
    assert [(r["subject"], r["open"]) for r in ended] == [(vid, False)]


def test_a_stress_test_reads_the_pool_as_known_at_a_time(db_url: str) -> None:
    issue(db_url, quantity=800, buffer=200, on="2020-01-01", project="FIRST")
    time.sleep(0.01)
    known = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    issue(db_url, quantity=2_400, buffer=600, on="2019-01-01", project="LATER")
    args = ("stress-test", "--pool", "icvcm-ccp", "--as-of", "2021-01-01", "--scenarios", "200",
            "--horizon", "10", "--no-record")
    now = ok(db_url, *args)["parameters"]["pool_figures"]
    then = ok(db_url, *args, "--known-at", known)["parameters"]["pool_figures"]
    assert (now["total_exposure"], then["total_exposure"]) == (3_200, 800)
    assert (now["balance"]["contributions"], then["balance"]["contributions"]) == (800, 200)
    with running(create_app(Settings(db=db_url, today=date(2026, 11, 30)))) as client:
        answer = client.get("/stress-test", params={
            "pool": "icvcm-ccp", "as_of": "2021-01-01", "scenarios": 200, "horizon": 10,
            "known_at": known})
        assert answer.status_code == 200, answer.text
        assert answer.json()["parameters"]["pool_figures"]["total_exposure"] == 800
