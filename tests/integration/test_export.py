"""Tamper-evident export: a clean export verifies offline; each kind of tampering is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from permanence.cli.main import app
from permanence.config import Settings
from permanence.runtime import Runtime
from projections.export import (
    GENESIS,
    canonical,
    log_records,
    record_hash,
)
from projections.export_verify import verify_export
from projections.queries import Filters, liabilities

PERMANENCE = Path(sys.executable).with_name("permanence")


def cli(db: str, *args: str) -> Result:
    return CliRunner().invoke(app, ["--db", db, *args])


def scenario(rt: Runtime) -> dict[str, str]:
    """Two programs, every kind of event that changes a total, one float-valued event."""
    a = rt.app.issue(program="verra-vcs", project="VCS1", vintage_year=2021, quantity=80_000,
                     buffer=20_000, on=date(2022, 1, 1), serial_first="1", serial_last="80000")
    b = rt.app.issue(program="verra-vcs", project="VCS2", vintage_year=2022, quantity=10_000,
                     buffer=2_500, on=date(2023, 3, 1))
    c = rt.app.issue(program="acr", project="ACR9", vintage_year=2022, quantity=5_000,
                     buffer=1_000, on=date(2023, 6, 1))
    rt.app.verify(a, date(2024, 6, 30), verifier="SCS Global")
    rev = rt.app.record_reversal(a, date(2024, 8, 1), 3_000, "wildfire")
    rt.app.compensate(a, rev["reversal_id"], "buffer", 1_000, date(2024, 9, 1))
    rt.app.record_reversal(b, date(2024, 2, 1), 700, "harvest")
    rt.app.retire(a, 5_000, date(2024, 1, 15), beneficiary="Acme")
    rt.app.cancel(c, 400, date(2024, 2, 2), reason="error")
    rt.app.assess_risk([c], date(2024, 3, 1), tool="permanence-risk-tool", tool_version="1.0",
                       buffer_rate=0.15, annual_probability=0.0025,
                       category_probabilities={"fire": 0.001})
    return {"a": a, "b": b, "c": c}


@pytest.fixture
def exported(runtime: Runtime, db_url: str, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    ids = scenario(runtime)
    out = tmp_path / "export.jsonl"
    result = cli(db_url, "export", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    return out, ids


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def manifest_of(path: Path) -> dict[str, Any]:
    last = json.loads(lines(path)[-1])
    assert last["manifest"] is True
    return last


def offline_verify(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``permanence verify-export`` with no database configured, from an empty directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PERMANENCE_")}
    return subprocess.run([str(PERMANENCE), "verify-export", str(path)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_clean_export_verifies_offline_with_replayed_totals(
    exported: tuple[Path, dict[str, str]], runtime: Runtime, tmp_path: Path
) -> None:
    out, _ = exported
    rows = [json.loads(line) for line in lines(out)]
    records, manifest = rows[:-1], rows[-1]
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert records[0]["prev_hash"] == GENESIS
    assert all(r["prev_hash"] == p["hash"] for p, r in pairwise(records))
    assert all(record_hash(r) == r["hash"] for r in records)
    assert manifest["head"] == records[-1]["hash"]
    assert manifest["records"] == 10 and manifest["vintages"] == 3
    assert manifest["by_event"] == {"Issued": 3, "Verified": 1, "ReversalRecorded": 2,
                                    "Compensated": 1, "Retired": 1, "Cancelled": 1,
                                    "RiskAssessed": 1}
    verra, acr = manifest["totals"]["verra-vcs"], manifest["totals"]["acr"]
    assert (verra["issued"], verra["buffer"], verra["vintages"]) == (90_000, 22_500, 2)
    assert verra["due"] == {"proponent": 700, "pool": 2_000, "fund": 0, "jurisdiction": 0, "insurer": 0}
    assert (acr["issued"], acr["exposure"]) == (5_000, 4_600)
    as_of = date.fromisoformat(manifest["as_of"])
    for program, totals in manifest["totals"].items():
        read_model = liabilities(runtime.engine, as_of, Filters(program=program))
        assert totals["exposure"] == read_model["exposure"]
        assert totals["due"] == read_model["due"]

    empty = tmp_path / "empty-cwd"
    empty.mkdir()
    done = offline_verify(out, empty)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 10 records, 3 vintage(s)")
    assert list(empty.iterdir()) == []  # no database was created

    result = verify_export(out)
    assert result.ok and result.problem is None
    assert result.head == manifest["head"] and result.totals == manifest["totals"]


@pytest.fixture
def clean_export(sqlite_url: str, tmp_path: Path) -> Path:
    rt = Runtime(Settings(db=sqlite_url))
    try:
        scenario(rt)
    finally:
        rt.close()
    out = tmp_path / "clean.jsonl"
    assert cli(sqlite_url, "export", "--out", str(out)).exit_code == 0
    return out


def test_edited_quantity_is_named_from_a_subprocess(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    record = json.loads(rows[4])  # seq 5: the first reversal, 3,000 tonnes
    assert record["state"]["quantity"] == 3_000
    record["state"]["quantity"] = 300
    rows[4] = canonical(record).decode()
    tampered = write(tmp_path / "edited.jsonl", rows)
    empty = tmp_path / "cwd"
    empty.mkdir()
    done = offline_verify(tampered, empty)
    assert done.returncode == 1
    assert done.stdout.strip() == "record 5 altered: hash mismatch"
    assert verify_export(tampered).problem == "record 5 altered: hash mismatch"


def test_deleted_record_is_named(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    del rows[6]  # seq 7
    result = verify_export(write(tmp_path / "deleted.jsonl", rows))
    assert not result.ok
    assert result.problem == (
        "record 7 missing: record 8 follows record 6 and its prev_hash does not match record 6"
    )


def test_deleted_last_record_is_named(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    del rows[-2]  # seq 10, just before the manifest
    result = verify_export(write(tmp_path / "truncated.jsonl", rows))
    assert result.problem == (
        "record 10 missing: the file ends after record 9, the manifest lists 10 records"
    )


def test_inserted_copies_are_named(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    earlier = rows[:5] + [rows[1]] + rows[5:]  # a copy of record 2 placed after record 5
    assert verify_export(write(tmp_path / "ins1.jsonl", earlier)).problem == (
        "record inserted after record 5: a copy of record 2"
    )
    later = rows[:2] + [rows[8]] + rows[2:]  # a copy of record 9 placed after record 2
    assert verify_export(write(tmp_path / "ins2.jsonl", later)).problem == (
        "record inserted after record 2: a copy of record 9"
    )


def test_swapped_records_are_named(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    adjacent = rows.copy()
    adjacent[2], adjacent[3] = adjacent[3], adjacent[2]
    assert verify_export(write(tmp_path / "swap1.jsonl", adjacent)).problem == (
        "records out of order: record 4 comes before record 3"
    )
    apart = rows.copy()
    apart[1], apart[7] = apart[7], apart[1]
    assert verify_export(write(tmp_path / "swap2.jsonl", apart)).problem == (
        "records out of order: record 8 comes before record 2"
    )


def test_reordered_and_rechained_events_break_the_version_sequence(
    clean_export: Path, tmp_path: Path
) -> None:
    """An attacker who re-hashes the whole chain is still caught by the replay."""
    rows = [json.loads(line) for line in lines(clean_export)]
    records, manifest = rows[:-1], rows[-1]
    a = records[0]["originator_id"]
    i, j = [k for k, r in enumerate(records) if r["originator_id"] == a][1:3]
    records[i], records[j] = records[j], records[i]
    prev = GENESIS
    for seq, r in enumerate(records, 1):
        r["seq"], r["prev_hash"] = seq, prev
        r["hash"] = prev = record_hash(r)
    manifest["head"] = prev
    out = write(tmp_path / "rechained.jsonl", [canonical(r).decode() for r in [*records, manifest]])
    assert verify_export(out).problem == (
        f"record {i + 1}: version sequence broken for vintage {a}: expected version 2, found 3"
    )


def test_edited_manifest_total_is_named(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    manifest = json.loads(rows[-1])
    manifest["totals"]["verra-vcs"]["issued"] = 95_000
    rows[-1] = canonical(manifest).decode()
    result = verify_export(write(tmp_path / "manifest.jsonl", rows))
    assert result.problem == "manifest mismatch: totals.verra-vcs.issued is 95000, replay gives 90000"


def test_missing_manifest_and_hostile_records_are_named(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    assert verify_export(write(tmp_path / "nomanifest.jsonl", rows[:-1])).problem == (
        "manifest missing: the file ends after record 10"
    )
    record = json.loads(rows[0])
    record["topic"] = "os:system"
    record["hash"] = record_hash(record)
    assert verify_export(write(tmp_path / "topic.jsonl", [canonical(record).decode()])).problem == (
        "record 1: unknown event topic 'os:system'"
    )
    record = json.loads(rows[0])
    record["state"] = "not an event"
    record["hash"] = record_hash(record)
    assert verify_export(write(tmp_path / "state.jsonl", [canonical(record).decode()])).problem == (
        "record 1: Issued: state is not a JSON object"
    )


def test_head_is_the_export_head_and_moves_with_the_log(
    exported: tuple[Path, dict[str, str]], runtime: Runtime, db_url: str, tmp_path: Path
) -> None:
    out, ids = exported
    first = cli(db_url, "head", "--json")
    assert first.exit_code == 0, first.output
    published = json.loads(first.output)
    assert published["head"] == manifest_of(out)["head"]
    assert published["records"] == 10

    runtime.app.note(ids["b"], "correction notice 7", date(2024, 5, 1))
    moved = json.loads(cli(db_url, "head", "--json").output)
    assert moved["head"] != published["head"] and moved["records"] == 11
    again = tmp_path / "again.jsonl"
    assert cli(db_url, "export", "--out", str(again)).exit_code == 0
    assert manifest_of(again)["head"] == moved["head"]
    assert lines(again)[:10] == lines(out)[:10]  # the history before the new event is unchanged


def test_program_export_chains_only_that_program(clean_export: Path, sqlite_url: str,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "acr.jsonl"
    result = cli(sqlite_url, "export", "--out", str(out), "--program", "acr", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in lines(out)]
    records, manifest = rows[:-1], rows[-1]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert {r["originator_id"] for r in records} == {records[0]["originator_id"]}
    assert manifest["program"] == "acr" and list(manifest["totals"]) == ["acr"]
    assert verify_export(out).ok


def test_log_is_read_in_pages(sqlite_url: str) -> None:
    rt = Runtime(Settings(db=sqlite_url))
    try:
        scenario(rt)
        paged = [r["notification_id"] for r in log_records(rt.app, page_size=2)]
        acr = [r["notification_id"] for r in log_records(rt.app, program="acr", page_size=2)]
    finally:
        rt.close()
    assert paged == list(range(1, 11))
    assert len(acr) == 3


def test_bad_export_requests_exit_with_one_line(sqlite_url: str, tmp_path: Path) -> None:
    missing = cli(sqlite_url, "verify-export", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "is not a readable file" in missing.output
    unknown = cli(sqlite_url, "export", "--out", str(tmp_path / "x.jsonl"), "--program", "nope")
    assert unknown.exit_code == 1 and not (tmp_path / "x.jsonl").exists()
    fmt = cli(sqlite_url, "export", "--out", str(tmp_path / "x"), "--format", "xml")
    assert fmt.exit_code == 2 and "format" in fmt.output


# ---------------------------------------------------------------------- the published head, keys


def rederived(records: list[dict[str, Any]], as_of: str, program: str | None = None) -> str:
    """The manifest a forger derives again for ``records`` (what ``write_export`` would write)."""
    from collections import Counter

    from projections.export import FORMAT, Replayer, event_name

    replayer = Replayer()
    for r in records:
        replayer.apply(r)
    manifest = {
        "manifest": True, "format": FORMAT, "algorithm": "sha256", "genesis": GENESIS,
        "exported_at": "2030-01-01T00:00:00+00:00", "as_of": as_of, "program": program,
        "last_notification_id": records[-1]["notification_id"] if records else 0,
        "head": records[-1]["hash"] if records else GENESIS, "records": len(records),
        "by_event": dict(Counter(event_name(r["topic"]) for r in records)),
        "vintages": len(replayer.vintages), "totals": replayer.totals(date.fromisoformat(as_of)),
    }
    return canonical(manifest).decode()


def test_tail_cut_with_a_rederived_manifest_fails_against_the_published_head(
    clean_export: Path, sqlite_url: str, tmp_path: Path
) -> None:
    rows = lines(clean_export)
    records = [json.loads(line) for line in rows[:-1]]
    cut = write(tmp_path / "cut.jsonl", [*rows[:8], rederived(records[:8], manifest_of(
        clean_export)["as_of"])])
    assert verify_export(cut).ok  # on its own, a shorter history is whole
    published = json.loads(cli(sqlite_url, "head", "--json").output)["head"]
    assert published == manifest_of(clean_export)["head"]

    caught = cli(sqlite_url, "verify-export", str(cut), "--expect-head", published)
    assert caught.exit_code == 1
    assert caught.output.startswith(f"head mismatch: the file ends at {records[7]['hash']} "
                                    f"(record 8), not at the expected head {published}")
    fine = cli(sqlite_url, "verify-export", str(clean_export), "--expect-head", published.upper(),
               "--json")
    assert fine.exit_code == 0 and json.loads(fine.output)["expected_head"] == published
    bad = cli(sqlite_url, "verify-export", str(clean_export), "--expect-head", "abc")
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: expect-head: 'abc' is not a SHA-256 hex digest (64 hex digits)"


def test_a_log_chained_afresh_fails_against_the_published_head(
    clean_export: Path, tmp_path: Path
) -> None:
    """A forger who edits an event, re-chains every record and re-derives the manifest."""
    rows = [json.loads(line) for line in lines(clean_export)]
    records, manifest = rows[:-1], rows[-1]
    retired = next(r for r in records if r["topic"].endswith(":Retired"))
    retired["state"]["beneficiary"] = "Someone Else"
    prev = GENESIS
    for r in records:
        r["prev_hash"] = prev
        r["hash"] = prev = record_hash(r)
    forged = write(tmp_path / "forged.jsonl", [*(canonical(r).decode() for r in records),
                                               rederived(records, manifest["as_of"])])
    alone = verify_export(forged)
    assert alone.ok, alone.problem
    against = verify_export(forged, expect_head=manifest["head"])
    assert not against.ok and against.problem is not None
    assert against.problem.startswith("head mismatch")


def test_a_key_given_twice_is_named(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    first = json.loads(rows[0])
    quantity = first["state"]["quantity"]
    # parsers that keep the first value read 1 tonne; those that keep the last, the original
    twice = rows[0].replace(f'"quantity":{quantity}', f'"quantity":1,"quantity":{quantity}', 1)
    assert twice != rows[0]
    result = verify_export(write(tmp_path / "twice.jsonl", [twice, *rows[1:]]))
    assert result.problem == "line 1: key 'quantity' is given twice"
    manifest = rows[-1].replace('"records":', '"records":0,"records":', 1)
    result = verify_export(write(tmp_path / "twice-manifest.jsonl", [*rows[:-1], manifest]))
    assert result.problem == "line 11: key 'records' is given twice"


@pytest.mark.parametrize(("edit", "problem"), [
    ({"signed_by": "registry"}, "manifest: unknown key 'signed_by'"),
    ({"exported_at": None}, "manifest: exported_at None is not a timestamp"),
    ({"algorithm": "md5"}, "manifest: algorithm 'md5' is not 'sha256'"),
    ({"genesis": "1" * 64}, "manifest: genesis is not 64 zeros"),
    ({"last_notification_id": 3},
     "manifest mismatch: last_notification_id is 3, the last record is notification 10"),
    ({"program": 7}, "manifest: program 7 is not a name"),
])
def test_every_manifest_key_is_checked(
    clean_export: Path, tmp_path: Path, edit: dict[str, Any], problem: str
) -> None:
    rows = lines(clean_export)
    manifest = {**json.loads(rows[-1]), **edit}
    assert verify_export(write(tmp_path / "m.jsonl", [*rows[:-1], canonical(manifest).decode()])
                         ).problem == problem
    del manifest["exported_at"]
    if "exported_at" not in edit and "signed_by" not in edit:
        return
    missing = verify_export(write(tmp_path / "m2.jsonl", [*rows[:-1], canonical(
        {k: v for k, v in manifest.items() if k != "signed_by"}).decode()]))
    assert missing.problem == "manifest: lacks exported_at"


def test_records_carry_exactly_their_keys_in_log_order(clean_export: Path, tmp_path: Path) -> None:
    rows = lines(clean_export)
    extra = json.loads(rows[0])
    extra["comment"] = "harmless?"
    extra["hash"] = record_hash(extra)
    assert verify_export(write(tmp_path / "extra.jsonl", [canonical(extra).decode()])).problem == (
        "line 1: record has an unknown key 'comment'"
    )
    records = [json.loads(line) for line in rows[:-1]]
    records[1]["notification_id"] = records[0]["notification_id"]
    prev = GENESIS
    for r in records:
        r["prev_hash"] = prev
        r["hash"] = prev = record_hash(r)
    out = write(tmp_path / "ids.jsonl", [canonical(r).decode() for r in records])
    assert verify_export(out).problem == "record 2: notification_id 1 does not follow 1"
