"""Export in the shape of the Climate Action Data Trust (CADT) data model, for meta-registries.

Field names follow Chia-Network/cadt ``src/models/{projects,issuances,units}/*.modeltypes.cjs``
(a faithful subset: what the ledger knows); unit statuses and corresponding-adjustment values
follow ``src/models/governance/glossary.stub.js``. Files written to the output directory:

- ``projects.csv``: one row per (program, project);
- ``issuances.csv``: one row per vintage;
- ``units.csv``: per vintage, one block per status with a non-zero count: ``Held``
  (outstanding credits), ``Retired``, ``Cancelled`` (cancelled or invalidated) and ``Buffer``
  (the vintage's buffer contribution). The ledger does not record which serials within a
  vintage's range carry which status, so every project block names the vintage's whole range
  in ``serialNumberBlock``/``unitBlockStart``/``unitBlockEnd`` while ``unitCount`` is the
  block's own count; the buffer block has no serials in the ledger and leaves them empty;
- ``cadt.json``: the same three tables as JSON.

Identifiers are deterministic (UUID 5 of the program and project, or of the vintage id), so
re-exporting yields the same ids. Any CSV cell starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is prefixed with ``'`` so that a spreadsheet shows it as text and never
evaluates it (the JSON file keeps the values verbatim).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, uuid5

from ledger.application import LedgerApp
from ledger.events import Verified
from ledger.vintage import Vintage
from projections.export import Replayer, log_records

NAMESPACE = uuid5(NAMESPACE_URL, "https://permanence.example/cadt")

PROJECT_FIELDS = (
    "warehouseProjectId", "projectId", "originProjectId", "currentRegistry", "registryOfOrigin",
    "program", "projectName", "unitMetric",
)
ISSUANCE_FIELDS = (
    "id", "warehouseProjectId", "startDate", "endDate", "verificationApproach",
    "verificationReportDate", "verificationBody",
)
UNIT_FIELDS = (
    "warehouseUnitId", "issuanceId", "projectLocationId", "unitOwner", "serialNumberBlock",
    "unitBlockStart", "unitBlockEnd", "unitCount", "vintageYear", "unitType", "unitStatus",
    "unitStatusReason", "unitTags", "correspondingAdjustmentDeclaration",
    "correspondingAdjustmentStatus",
)
FILES = {"projects.csv": PROJECT_FIELDS, "issuances.csv": ISSUANCE_FIELDS, "units.csv": UNIT_FIELDS}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CA_DECLARATIONS = {
    "committed": "Committed", "yes": "Committed", "not required": "Not Required",
    "no": "Not Required", "unknown": "Unknown",
}
_CA_STATUSES = {"not started": "Not Started", "pending": "Pending", "completed": "Completed"}


def neutralise(value: Any) -> str:
    """A CSV cell a spreadsheet will not evaluate as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def project_id(program: str, project: str) -> str:
    return str(uuid5(NAMESPACE, f"project\x1f{program}\x1f{project}"))


def issuance_id(vintage_id: str) -> str:
    return str(uuid5(NAMESPACE, f"issuance\x1f{vintage_id}"))


def unit_id(vintage_id: str, status: str) -> str:
    return str(uuid5(NAMESPACE, f"unit\x1f{vintage_id}\x1f{status}"))


def tables(app: LedgerApp, program: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Projects, issuances and units rows, from one paged replay of the log."""
    replayer = Replayer()
    verifiers: dict[str, str | None] = {}
    stop = app.recorder.max_notification_id() or 0
    if stop:
        for record in log_records(app, program, stop=stop):
            event = replayer.apply(record)
            if isinstance(event, Verified):
                verifiers[record["originator_id"]] = event.verifier
    projects: dict[str, dict[str, Any]] = {}
    issuances, units = [], []
    ordered = sorted(replayer.vintages.values(), key=lambda v: (v.program, v.project, v.issued_on, str(v.id)))
    for v in ordered:
        pid = project_id(v.program, v.project)
        projects.setdefault(pid, _project_row(pid, v))
        issuances.append(_issuance_row(pid, v, verifiers.get(str(v.id))))
        units.extend(_unit_rows(v))
    return {"projects": list(projects.values()), "issuances": issuances, "units": units}


def _project_row(pid: str, v: Vintage) -> dict[str, Any]:
    return {
        "warehouseProjectId": pid,
        "projectId": v.project,
        "originProjectId": v.project,
        "currentRegistry": v.program,
        "registryOfOrigin": v.program,
        "program": v.program,
        "projectName": v.project,
        "unitMetric": "tCO2e",
    }


def _issuance_row(pid: str, v: Vintage, verifier: str | None) -> dict[str, Any]:
    start, end = v.vintage_start, v.vintage_end
    year = v.vintage_year
    return {
        "id": issuance_id(str(v.id)),
        "warehouseProjectId": pid,
        "startDate": start.isoformat() if start else (f"{year}-01-01" if year else None),
        "endDate": end.isoformat() if end else (f"{year}-12-31" if year else None),
        "verificationApproach": None,
        "verificationReportDate": v.last_verified.isoformat() if v.last_verified else None,
        "verificationBody": verifier,
    }


def _unit_rows(v: Vintage) -> list[dict[str, Any]]:
    vid = str(v.id)
    retired = sum(d.quantity for d in v.retirements)
    cancelled = sum(d.quantity for d in v.cancellations + v.invalidations)
    serials = (v.serial_first, v.serial_last or v.serial_first) if v.serial_first else (None, None)
    blocks: tuple[tuple[str, int, tuple[str | None, str | None], str | None], ...] = (
        ("Held", v.outstanding_credits, serials, None),
        ("Retired", retired, serials, None),
        ("Cancelled", cancelled, serials, "cancelled or invalidated after issuance"),
        ("Buffer", v.buffer, (None, None), f"contribution to pooled buffer {v.pool}"),
    )
    tags = ", ".join([label for label, _ in v.labels] + (
        [f"authorization: {v.authorization}"] if v.authorization else []
    ))
    declaration, status = _corresponding_adjustment(v.corresponding_adjustment)
    return [
        {
            "warehouseUnitId": unit_id(vid, name),
            "issuanceId": issuance_id(vid),
            "projectLocationId": None,
            "unitOwner": None,
            "serialNumberBlock": f"{first}-{last}" if first else None,
            "unitBlockStart": first,
            "unitBlockEnd": last,
            "unitCount": count,
            "vintageYear": v.vintage_year,
            "unitType": None,
            "unitStatus": name,
            "unitStatusReason": reason,
            "unitTags": tags or None,
            "correspondingAdjustmentDeclaration": declaration,
            "correspondingAdjustmentStatus": status,
        }
        for name, count, (first, last), reason in blocks
        if count > 0
    ]


def _corresponding_adjustment(value: str | None) -> tuple[str, str | None]:
    """CADT's declaration and status picklists from the source's free text."""
    key = (value or "").strip().lower()
    if key in _CA_STATUSES:
        return "Committed", _CA_STATUSES[key]
    return _CA_DECLARATIONS.get(key, "Unknown"), None


def write_cadt(app: LedgerApp, out_dir: Path, program: str | None = None) -> dict[str, Any]:
    """Write the CSV files and ``cadt.json``; returns the row counts per table."""
    data = tables(app, program)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, fields in FILES.items():
        _atomic_csv(out_dir / name, fields, data[name.removesuffix(".csv")])
    _atomic_write(out_dir / "cadt.json", json.dumps(data, indent=2, ensure_ascii=False))
    return {"directory": str(out_dir), **{k: len(v) for k, v in data.items()}}


def _atomic_csv(path: Path, fields: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for row in rows:
            writer.writerow([neutralise(row[k]) for k in fields])
    os.replace(tmp, path)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)
