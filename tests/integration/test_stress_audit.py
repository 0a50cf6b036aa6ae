"""A recorded stress test joins the audit trail: exported, verified offline, in the report."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ledger.errors import UnknownVintage
from permanence.runtime import Runtime
from projections.consistency import check
from projections.export import write_export
from projections.export_verify import verify_export
from projections.queries import buffer, pools
from projections.report import write_report_files
from risk.record import stress_test_id
from risk.service import latest_stress_summary, record_stress_test


def test_stress_run_is_exported_verified_and_reported(runtime: Runtime, tmp_path: Path) -> None:
    app = runtime.app
    app.issue(program="carb-forest", project="F", quantity=50_000, buffer=9_000, on=date(2025, 1, 1))
    run_id = record_stress_test(app, "carb-forest", date(2026, 1, 1),
                                {"model": "independent", "scenarios": 100, "horizon": 10, "seed": 1},
                                {"p_exhausted": 0.02, "expected_loss": 120.0})
    assert run_id == "ST1"
    assert buffer(runtime.engine, date(2026, 1, 1))["balance"] == 9_000
    manifest = write_export(app, tmp_path / "log.jsonl")
    assert manifest["by_event"] == {"Issued": 1, "StressTestRun": 1}
    result = verify_export(tmp_path / "log.jsonl")
    assert result.ok, result.problem
    assert check(app, runtime.engine) == []
    summary = latest_stress_summary(app, pools(runtime.engine), as_of=date(2026, 6, 1))
    assert summary is not None and summary["run_id"] == "ST1"
    files = write_report_files(runtime.engine, tmp_path / "report", date(2026, 6, 1), summary)
    assert "ST1" in files.index.read_text(encoding="utf-8")
    with pytest.raises(UnknownVintage, match="is not a vintage"):
        app.show(str(stress_test_id("carb-forest")), date(2026, 1, 1))
