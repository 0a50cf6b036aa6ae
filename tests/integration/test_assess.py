"""``permanence assess``: a project's risk assessment recorded on its vintages, or nothing.

Scenario: project VCS-9001 under verra-vcs (additive, Verra NPRT style: minimum 12%,
maximum 60%) has three vintages: two issued before the assessment date (2025-03-01) and
one issued after it, which cannot take a risk fact dated before its issuance and is
listed as skipped. Another project in the same pool is never assessed. The example
assessment scores six categories without a climate trend (0.5 + 3 + 2 + 2 + 1 + 1 = 9.5
points, so 0.095 of period risk) and two natural hazards with one (fire 4 points, extreme
weather 2), whose period risk the trend raises above their points: the additive rate is
above 0.155 and below the 60% maximum.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from ledger.profiles import ProfileCatalog
from permanence.cli.main import app as cli
from permanence.config import Settings
from permanence.runtime import Runtime
from projections.tables import vintages as pv
from risk.assessment import BufferMethod, evaluate, load_risk_tool
from risk.pool_contents import default_annual_probability, pool_contents
from tests.support import FIXTURES, SRC

EXAMPLE = FIXTURES / "assessment-example.toml"
PROFILES = SRC / "ledger" / "profiles"
PROJECT = "VCS-9001"


def invoke(db: str, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, ["--db", db, *args], env=env)


def event_count(db: str, profiles_dir: Path | None = None) -> int:
    rt = Runtime(Settings(db=db, profiles_dir=profiles_dir))
    try:
        return rt.app.recorder.max_notification_id() or 0
    finally:
        rt.close()


def example() -> dict[str, Any]:
    with EXAMPLE.open("rb") as handle:
        return tomllib.load(handle)


def toml_text(doc: dict[str, Any]) -> str:
    """Write an assessment dict back as TOML (top-level values, then a table per score)."""
    lines = [f"{k} = {_value(v)}" for k, v in doc.items() if k != "scores"]
    for category, entry in doc["scores"].items():
        lines.append(f"[scores.{category}]")
        lines += [f"{k} = {_value(v)}" for k, v in entry.items() if k != "sources"]
        for source in entry.get("sources", []):
            lines.append(f"[[scores.{category}.sources]]")
            lines += [f"{k} = {_value(v)}" for k, v in source.items()]
    return "\n".join(lines) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, date):
        return value.isoformat()
    return json.dumps(value)


@pytest.fixture
def ledger(db_url: str) -> Iterator[tuple[str, list[str], str]]:
    """Three vintages of VCS-9001 (the last issued after the assessment) and one of another."""
    rt = Runtime(Settings(db=db_url))
    try:
        ids = [
            rt.app.issue(program="verra-vcs", project=PROJECT, quantity=60_000, buffer=12_000,
                         on=date(2022, 1, 1), vintage_year=2021),
            rt.app.issue(program="verra-vcs", project=PROJECT, quantity=40_000, buffer=8_000,
                         on=date(2024, 1, 1), vintage_year=2023),
            rt.app.issue(program="verra-vcs", project=PROJECT, quantity=10_000, buffer=2_000,
                         on=date(2026, 1, 1), vintage_year=2025),
        ]
        other = rt.app.issue(program="verra-vcs", project="VCS-7", quantity=5_000, buffer=1_000,
                             on=date(2022, 1, 1), vintage_year=2021)
    finally:
        rt.close()
    yield db_url, ids, other


def test_assessment_is_recorded_on_every_monitored_vintage_of_the_project(
    ledger: tuple[str, list[str], str], tmp_path: Path
) -> None:
    db, ids, other = ledger
    before = event_count(db)
    expected = evaluate(example(), load_risk_tool(), BufferMethod.additive(0.12, 0.60))

    out = invoke(db, "assess", "--project", PROJECT, "--file", str(EXAMPLE), "--json")

    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert sorted(data["vintages_assessed"]) == sorted(ids[:2])
    assert data["vintages_skipped"] == [ids[2]]
    assert data["on"] == "2025-03-01" and data["method"] == "additive"
    assert data["buffer_rate"] == expected.buffer_rate
    assert 0.155 < data["buffer_rate"] < 0.60
    assert data["combined_annual_probability"] == pytest.approx(
        1 - math.prod(1 - p for p in data["annual_probability"].values())
    )
    assert data["reassessment_due"] == "2030-03-01"  # verra-vcs reassesses every 5 years
    assert event_count(db) == before + 2

    rt = Runtime(Settings(db=db))
    try:
        rt.refresh()
        with rt.engine.connect() as conn:
            table = conn.execute(
                select(pv.c.vintage_id, pv.c.buffer_rate, pv.c.annual_probability, pv.c.risk_due)
            ).all()
        rows: dict[str, str | None] = {r[0]: r[1] for r in table}
        prob: dict[str, str | None] = {r[0]: r[2] for r in table}
        due: dict[str, str | None] = {r[0]: r[3] for r in table}
    finally:
        rt.close()
    for vid in ids[:2]:
        assert rows[vid] == f"{expected.buffer_rate:.4f}"
        assessed = float(prob[vid] or "nan")
        assert assessed == pytest.approx(expected.combined_annual_probability, abs=1e-6)
        assert due[vid] == "2030-03-01"
    assert rows[ids[2]] is None and rows[other] is None

    history = json.loads(invoke(db, "history", ids[0], "--json").stdout)
    assessed = history["events"][-1]
    assert assessed["event"] == "RiskAssessed"
    assert assessed["data"]["buffer_rate"] == expected.buffer_rate
    assert assessed["data"]["tool"] == "permanence-risk-tool"
    assert set(assessed["data"]["category_probabilities"]) == set(expected.annual_probability)
    assert assessed["recorded_by"] == "cli"


def test_pool_contents_use_the_assessment_else_the_profile_default(
    ledger: tuple[str, list[str], str],
) -> None:
    db, _, _ = ledger
    assert invoke(db, "assess", "--file", str(EXAMPLE)).exit_code == 0
    rt = Runtime(Settings(db=db))
    try:
        rt.refresh()
        figures = pool_contents(
            rt.engine, "verra-vcs", date(2026, 6, 1), rt.catalog,
            categories={PROJECT: {"fire": 0.003, "financial": 0.001}},
        )
    finally:
        rt.close()
    rows = {p.project: p for p in figures.projects}
    assert rows[PROJECT].exposure == 110_000 and rows["VCS-7"].exposure == 5_000
    assert rows[PROJECT].probability_source == "assessed"
    assert rows[PROJECT].annual_probability > 0.0015
    assert rows[PROJECT].avoidable_share == pytest.approx(0.25)  # financial is not natural
    # verra-vcs states no buffer rate: its 12% minimum over the 100-year reference period
    assert rows["VCS-7"].probability_source == "profile default"
    assert rows["VCS-7"].annual_probability == pytest.approx(1 - 0.88 ** (1 / 100))
    assert rows["VCS-7"].avoidable_share == 0.0
    assert figures.contents.buffer_balance == 23_000
    assert figures.contents.region.tolist() == [0, 0]  # one program, one region


def test_default_probability_reads_the_profile_rate() -> None:
    catalog = ProfileCatalog.load()
    assert default_annual_probability("icvcm-ccp", catalog) == pytest.approx(1 - 0.8 ** 0.01)
    assert default_annual_probability("carb-forest", catalog) == pytest.approx(1 - 0.8 ** 0.01)
    assert default_annual_probability("no-such-program", catalog) == pytest.approx(1 - 0.8 ** 0.01)


# ---------------------------------------------------------------------- rejections


def _without_geological(doc: dict[str, Any]) -> dict[str, Any]:
    del doc["scores"]["geological"]
    return doc


def _unsourced_fire(doc: dict[str, Any]) -> dict[str, Any]:
    del doc["scores"]["fire"]["sources"]
    return doc


def _over_threshold(doc: dict[str, Any]) -> dict[str, Any]:
    doc["scores"]["management"]["score"] = 25.0
    return doc


def _other_project(doc: dict[str, Any]) -> dict[str, Any]:
    doc["project"] = "VCS-1"
    return doc


REJECTED = [
    (_without_geological, "missing category 'geological'"),
    (_unsourced_fire, "unsourced score for category 'fire'"),
    (_over_threshold, "over its fail threshold"),
    (_other_project, "the assessment is for 'VCS-1'"),
]


@pytest.mark.parametrize(("change", "needle"), REJECTED, ids=[n for _, n in REJECTED])
def test_a_rejected_assessment_writes_nothing(
    ledger: tuple[str, list[str], str], tmp_path: Path, change: Any, needle: str
) -> None:
    db, _, _ = ledger
    path = tmp_path / "assessment.toml"
    path.write_text(toml_text(change(example())), encoding="utf-8")
    before = event_count(db)

    out = invoke(db, "assess", "--project", PROJECT, "--file", str(path))

    assert out.exit_code == 1, out.output
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], out.stderr
    assert event_count(db) == before


def test_the_toml_writer_round_trips_the_example(tmp_path: Path) -> None:
    path = tmp_path / "same.toml"
    path.write_text(toml_text(example()), encoding="utf-8")
    assert tomllib.loads(path.read_text(encoding="utf-8")) == example()


def test_a_rate_below_the_profile_minimum_is_rejected(db_url: str, tmp_path: Path) -> None:
    """A multiplicative program with a 25% minimum: the example's 17.4% is refused, not raised."""
    profile = json.loads((PROFILES / "acr.json").read_text(encoding="utf-8"))
    profile["name"] = "strict-forest"
    profile["minimum_buffer_rate"] = {"value": 0.25, "source": "test", "confidence": "M"}
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "strict-forest.json").write_text(json.dumps(profile), encoding="utf-8")
    rt = Runtime(Settings(db=db_url, profiles_dir=profiles))
    try:
        rt.app.issue(program="strict-forest", project=PROJECT, quantity=1_000, buffer=334,
                     on=date(2024, 1, 1))  # 25.04%: the profile's minimum, met at issuance
    finally:
        rt.close()
    before = event_count(db_url, profiles)

    out = invoke(db_url, "assess", "--file", str(EXAMPLE),
                 env={"PERMANENCE_PROFILES_DIR": str(profiles)})

    assert out.exit_code == 1, out.output
    assert "below the profile minimum 0.2500" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert event_count(db_url, profiles) == before


def test_a_missing_or_malformed_file_is_a_usage_error(
    ledger: tuple[str, list[str], str], tmp_path: Path
) -> None:
    db, _, _ = ledger
    before = event_count(db)
    broken = tmp_path / "broken.toml"
    broken.write_text("project = \n[scores", encoding="utf-8")
    for path, needle in ((tmp_path / "absent.toml", "does not exist"), (broken, "not valid TOML")):
        out = invoke(db, "assess", "--project", PROJECT, "--file", str(path))
        assert out.exit_code == 2, out.output
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], out.stderr
    assert event_count(db) == before


def test_an_unknown_project_is_rejected(ledger: tuple[str, list[str], str], tmp_path: Path) -> None:
    db, _, _ = ledger
    doc = example()
    doc["project"] = "VCS-404"
    path = tmp_path / "unknown.toml"
    path.write_text(toml_text(doc), encoding="utf-8")
    before = event_count(db)
    out = invoke(db, "assess", "--file", str(path))
    assert out.exit_code == 1
    assert "no vintages of project 'VCS-404'" in out.stderr
    assert event_count(db) == before
