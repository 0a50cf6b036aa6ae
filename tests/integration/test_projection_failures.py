"""A committed write never reports failure, and one event the read models cannot take
never stops them: it is recorded, named by ``projections status``, ``check`` and
``/healthz``, and everything after it is projected."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner, Result

from permanence.cli.main import app as cli
from permanence.config import Settings
from permanence.http.app import create_app
from permanence.runtime import Runtime
from projections.projector import Projector
from projections.queries import liabilities
from tests.support import poison, running

TODAY = {"PERMANENCE_TODAY": "2026-11-30"}


def run(db: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--db", db, *args], env=TODAY)


def test_one_bad_event_is_reported_and_the_rest_projects(db_url: str) -> None:
    rt = Runtime(Settings(db=db_url, today=date(2026, 11, 30)))
    try:
        first = rt.app.issue(program="icvcm-ccp", project="A", quantity=100, buffer=25,
                             on=date(2020, 1, 1))
        bad = poison(rt, first)
        rt.refresh()  # does not raise
        [failure] = rt.projector.failures()
        assert failure["nid"] == bad and failure["vintage_id"] == first
        assert "R9" in failure["error"]
    finally:
        rt.close()
    later = run(db_url, "issue", "--program", "icvcm-ccp", "--project", "B", "--quantity", "300",
                "--buffer", "75", "--on", "2021-01-01")
    assert later.exit_code == 0, later.output
    rt = Runtime(Settings(db=db_url, today=date(2026, 11, 30)))
    try:
        assert rt.projector.lag() == 0
        assert liabilities(rt.engine, date(2022, 1, 1))["exposure"] == 400
    finally:
        rt.close()
    status = run(db_url, "projections", "status", "--json")
    assert status.exit_code == 1
    assert [f["nid"] for f in json.loads(status.stdout)["failures"]] == [bad]
    rebuilt = run(db_url, "projections", "rebuild")
    assert rebuilt.exit_code == 0, rebuilt.output  # it records the event again and goes on
    status = run(db_url, "projections", "status", "--json")
    assert [f["nid"] for f in json.loads(status.stdout)["failures"]] == [bad]
    check = run(db_url, "check", "--json")
    assert check.exit_code == 1
    kinds = [f["kind"] for f in json.loads(check.stdout)["findings"]]
    assert kinds == ["broken-stream", "projection-failure"]  # the replay trips on it too
    with running(create_app(Settings(db=db_url))) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["status"] == "degraded"


def test_a_write_whose_projection_fails_is_reported_recorded(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(self: Projector, max_pages: int | None = None) -> int:
        raise OperationalError("SELECT 1", {}, Exception("the read side went away"))

    monkeypatch.setattr(Projector, "catch_up", unavailable)
    out = run(db_url, "issue", "--program", "icvcm-ccp", "--project", "A", "--quantity", "100",
              "--buffer", "25", "--on", "2020-01-01", "--json")
    assert out.exit_code == 0, out.output
    assert "warning: recorded, but the read models are behind" in out.stderr
    assert "Traceback" not in out.output
    vid = json.loads(out.stdout)["vintage_id"]
    monkeypatch.undo()
    rt = Runtime(Settings(db=db_url, today=date(2026, 11, 30)))
    try:
        assert rt.app.show(vid, date(2021, 1, 1))["exposure"] == 100
        rt.refresh()
        assert liabilities(rt.engine, date(2021, 1, 1))["exposure"] == 100
    finally:
        rt.close()
