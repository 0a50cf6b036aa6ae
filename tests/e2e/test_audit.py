"""``permanence audit``: the audit trail of every vintage of a project or program."""

from __future__ import annotations

import json
from datetime import date

from typer.testing import CliRunner, Result

from permanence.cli.main import app
from permanence.runtime import Runtime


def cli(db: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", db, *args])


def test_audit_by_project_lists_every_vintage_with_recorder_and_state(
    runtime: Runtime, db_url: str
) -> None:
    with runtime.app.acting_as("alice"):
        later = runtime.app.issue(program="verra-vcs", project="VCS7", vintage_year=2023,
                                  quantity=4_000, buffer=1_000, on=date(2024, 2, 1))
        earlier = runtime.app.issue(program="verra-vcs", project="VCS7", vintage_year=2022,
                                    quantity=8_000, buffer=2_000, on=date(2023, 2, 1))
        other = runtime.app.issue(program="verra-vcs", project="VCS8", vintage_year=2022,
                                  quantity=1_000, buffer=250, on=date(2023, 2, 1))
    with runtime.app.acting_as("bob"):
        runtime.app.verify_project("VCS7", date(2024, 6, 1), verifier="SCS")
        runtime.app.record_reversal(earlier, date(2024, 7, 1), 500, "wildfire")

    result = cli(db_url, "audit", "--project", "VCS7", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [v["vintage_id"] for v in data["vintages"]] == [earlier, later]
    first, second = data["vintages"]
    assert [e["event"] for e in first["events"]] == ["Issued", "Verified", "ReversalRecorded"]
    assert [e["version"] for e in first["events"]] == [1, 2, 3]
    assert [e["recorded_by"] for e in first["events"]] == ["alice", "bob", "bob"]
    assert first["events"][-1]["state"]["due"] == {"proponent": 0, "pool": 500, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert first["events"][0]["state"]["exposure"] == 8_000
    assert [e["event"] for e in second["events"]] == ["Issued", "Verified"]
    assert other not in {v["vintage_id"] for v in data["vintages"]}

    text = cli(db_url, "audit", "--project", "VCS7")
    assert text.exit_code == 0
    assert text.output.startswith("audit of project VCS7: 2 vintage(s)")
    assert "by bob; status monitored, exposure 8,000, due pool 500" in text.output

    by_program = json.loads(cli(db_url, "audit", "--program", "verra-vcs", "--json").output)
    assert {v["vintage_id"] for v in by_program["vintages"]} == {earlier, later, other}


def test_known_at_hides_a_back_dated_reversal_recorded_later(runtime: Runtime, db_url: str) -> None:
    vid = runtime.app.issue(program="verra-vcs", project="VCS9", vintage_year=2022,
                            quantity=10_000, buffer=2_500, on=date(2023, 1, 1))
    runtime.app.verify(vid, date(2025, 1, 1))
    known_at = runtime.app.stream(vid)[-1].timestamp  # after the verification was recorded
    runtime.app.record_reversal(vid, date(2024, 6, 1), 1_200, "harvest")  # dated before it

    def events(*extra: str) -> list[str]:
        result = cli(db_url, "audit", "--project", "VCS9", "--json", *extra)
        assert result.exit_code == 0, result.output
        return [e["event"] for e in json.loads(result.output)["vintages"][0]["events"]]

    assert events() == ["Issued", "Verified", "ReversalRecorded"]
    assert events("--known-at", known_at.isoformat()) == ["Issued", "Verified"]
    assert events("--as-of", "2024-05-31") == ["Issued"]
    assert events("--as-of", "2024-06-01") == ["Issued", "ReversalRecorded"]
    before_issue = cli(db_url, "audit", "--project", "VCS9", "--json",
                       "--known-at", "2000-01-01")
    assert json.loads(before_issue.output)["vintages"] == []


def test_audit_rejects_bad_requests_with_one_line(runtime: Runtime, db_url: str) -> None:
    neither = cli(db_url, "audit")
    assert neither.exit_code == 2 and "exactly one of --project or --program" in neither.output
    unknown = cli(db_url, "audit", "--project", "nowhere")
    assert unknown.exit_code == 1
    assert unknown.output.strip() == "error: project: no vintages of project 'nowhere'"
