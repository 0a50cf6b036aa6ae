"""Tamper-evident export: write and ``verify-export`` throughput (records per second)."""

from __future__ import annotations

import argparse
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from common import Timer, sqlite_store, vintage_specs

from permanence.config import Settings
from permanence.runtime import Runtime
from projections.export import write_export
from projections.export_verify import verify_export


def run(quick: bool = False) -> list[dict[str, Any]]:
    n = 10_000 if quick else 50_000
    with sqlite_store() as db, tempfile.TemporaryDirectory() as out:
        rt = Runtime(Settings(db=db), catch_up_on_write=False)
        try:
            for i in range(0, n, 10_000):
                ids = rt.app.issue_many(vintage_specs(10_000, i))
                for vid in ids[::10]:
                    rt.app.verify(vid, date(2026, 6, 1))
            path = Path(out) / "ledger.jsonl"
            with Timer() as w:
                manifest = write_export(rt.app, path)
        finally:
            rt.close()
        with Timer() as v:
            result = verify_export(path)
        assert result.ok, result.problem
        records = manifest["records"]
        size = path.stat().st_size / 1e6
    return [
        {"benchmark": "export", "step": "export (write + replay)", "records": records,
         "MB": size, "seconds": w.seconds, "records_per_s": records / w.seconds},
        {"benchmark": "export", "step": "verify-export (no database)", "records": records,
         "MB": size, "seconds": v.seconds, "records_per_s": records / v.seconds},
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    for row in run(parser.parse_args().quick):
        print(row)


if __name__ == "__main__":
    main()
