"""Cross-source consistency checks (World Bank / CMI note: consistency across the lifecycle).

Vintages reach the ledger from several registries' exports, so the same credits can arrive
twice, or two sources can claim the same serials. Import-level arithmetic (a file's total
against project + buffer) is checked by the importers; here the ledger as a whole is checked:

- ``serial-overlap``: two vintages whose serial ranges overlap in the same numbering space
  (same prefix before the trailing number; a purely numeric serial has the empty prefix),
  across any vintages and programs;
- ``double-issuance``: the same issuance under two programs: equal project, vintage year,
  quantity and issuance date, or the identical serial range;
- ``reversals-exceed-issued``, ``over-compensated``, ``credits-overdrawn``,
  ``hold-exceeds-buffer``, ``buffer-overdrawn``: replayed figures that do not add up;
- ``broken-stream``: a stored event that cannot be replayed onto its vintage;
- ``projection-drift``: the read model disagrees with a replay of the log.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select, tuple_

from ledger.application import LedgerApp
from ledger.vintage import Vintage
from projections.export import Replayer, ReplayError, log_records
from projections.tables import failures
from projections.tables import vintages as pv

_TAIL = re.compile(r"(.*?)(\d+)")
KINDS = (
    "serial-overlap", "double-issuance", "reversals-exceed-issued", "over-compensated",
    "credits-overdrawn", "hold-exceeds-buffer", "buffer-below-assessed-rate",
    "buffer-overdrawn", "broken-stream", "projection-failure", "projection-drift",
)


@dataclass(frozen=True)
class Finding:
    """One inconsistency: what kind, which vintages, and a sentence saying what is wrong."""

    kind: str
    vintage_ids: tuple[str, ...]
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "vintage_ids": list(self.vintage_ids)}


@dataclass(frozen=True)
class SerialRange:
    """A vintage's serials as a numbering space (prefix) and a closed numeric interval."""

    vintage_id: str
    program: str
    prefix: str
    low: int
    high: int
    text: str


def parse_serial_range(first: str | None, last: str | None) -> tuple[str, int, int] | None:
    """(prefix, low, high) from the trailing integer of each end; None if not comparable."""
    if not first:
        return None
    start = _TAIL.fullmatch(first.strip())
    if start is None:
        return None
    prefix, low = start[1], int(start[2])
    if not last:
        return prefix, low, low
    end = _TAIL.fullmatch(last.strip())
    if end is None or (end[1] and end[1] != prefix):
        return None
    high = int(end[2])
    return (prefix, low, high) if high >= low else None


def serial_findings(ranges: Iterable[SerialRange]) -> list[Finding]:
    """Overlapping ranges by a sweep per prefix: O(n log n) plus one step per overlap."""
    by_prefix: dict[str, list[SerialRange]] = {}
    for r in ranges:
        by_prefix.setdefault(r.prefix, []).append(r)
    findings = []
    for group in by_prefix.values():
        group.sort(key=lambda r: (r.low, r.high, r.vintage_id))
        active: list[tuple[int, int, SerialRange]] = []
        for i, r in enumerate(group):
            while active and active[0][0] < r.low:
                heapq.heappop(active)
            for _, _, other in sorted(active, key=lambda a: a[1]):
                findings.append(_overlap(other, r))
            heapq.heappush(active, (r.high, i, r))
    return findings


def _overlap(a: SerialRange, b: SerialRange) -> Finding:
    ids = (a.vintage_id, b.vintage_id)
    if (a.low, a.high) == (b.low, b.high) and a.program != b.program:
        return Finding("double-issuance", ids, (
            f"serial range {a.text} is issued under two programs: {a.program} "
            f"(vintage {a.vintage_id}) and {b.program} (vintage {b.vintage_id})"
        ))
    lo, hi = max(a.low, b.low), min(a.high, b.high)
    return Finding("serial-overlap", ids, (
        f"serials {a.text} ({a.program}, vintage {a.vintage_id}) and {b.text} ({b.program}, "
        f"vintage {b.vintage_id}) overlap on {hi - lo + 1:,} serial(s) from "
        f"{a.prefix}{lo} to {a.prefix}{hi}"
    ))


def serial_ranges(engine: Engine) -> Iterator[SerialRange]:
    stmt = select(pv.c.vintage_id, pv.c.program, pv.c.serial_first, pv.c.serial_last).where(
        pv.c.serial_first.is_not(None)
    )
    with engine.connect() as conn:
        for vid, program, first, last in conn.execute(stmt):
            parsed = parse_serial_range(first, last)
            if parsed is not None:
                text = f"{first}-{last}" if last else first
                yield SerialRange(vid, program, *parsed, text=text)


def same_issuance_findings(engine: Engine) -> list[Finding]:
    """Equal project, vintage year, quantity and issuance date under different programs."""
    key = (pv.c.project, pv.c.vintage_year, pv.c.quantity, pv.c.issued_on)
    dupes = (
        select(*key).group_by(*key).having(func.count(pv.c.program.distinct()) > 1).subquery()
    )
    stmt = (
        select(pv.c.vintage_id, pv.c.program, *key)
        .where(tuple_(*key).in_(select(*dupes.c)))
        .order_by(*key, pv.c.program, pv.c.vintage_id)
    )
    groups: dict[tuple[Any, ...], list[tuple[str, str]]] = {}
    with engine.connect() as conn:
        for vid, program, *k in conn.execute(stmt):
            groups.setdefault(tuple(k), []).append((vid, program))
    findings = []
    for (project, year, quantity, issued_on), members in groups.items():
        programs = sorted({p for _, p in members})
        findings.append(Finding("double-issuance", tuple(v for v, _ in members), (
            f"project {project}, vintage {year or 'unknown'}: {quantity:,} credits issued on "
            f"{issued_on} appear under programs {', '.join(programs)}"
        )))
    return findings


def replay_findings(app: LedgerApp, stop: int | None) -> tuple[Replayer, list[Finding]]:
    """Replay the log; a stream that breaks is a finding and its later events are skipped."""
    replayer = Replayer()
    broken: set[str] = set()
    findings = []
    for record in log_records(app, stop=stop):
        vid = record["originator_id"]
        if vid in broken:
            continue
        try:
            replayer.apply(record)
        except ReplayError as e:
            broken.add(vid)
            replayer.vintages.pop(vid, None)
            findings.append(Finding("broken-stream", (vid,), (
                f"notification {record['notification_id']}: {e}"
            )))
    return replayer, findings


def vintage_findings(v: Vintage) -> Iterator[Finding]:
    """Figures of one replayed vintage that do not add up."""
    vid = (str(v.id),)
    name = f"vintage {v.id} ({v.program}, project {v.project})"
    issued = v.quantity + v.buffer
    reversed_ = sum(r.quantity for r in v.reversals.values() if r.active and r.cured_on is None)
    if reversed_ > issued:
        yield Finding("reversals-exceed-issued", vid,
                      f"{name}: reversals of {reversed_:,} exceed the {issued:,} issued")
    for r in v.reversals.values():
        if r.compensated > r.quantity:
            yield Finding("over-compensated", vid, (
                f"{name}: reversal {r.reversal_id} of {r.quantity:,} is compensated "
                f"{r.compensated:,}"
            ))
    if v.outstanding_credits < 0:
        yield Finding("credits-overdrawn", vid, (
            f"{name}: {v.quantity - v.outstanding_credits:,} credits retired, cancelled or "
            f"invalidated of {v.quantity:,} issued"
        ))
    if not 0 <= v.on_hold <= v.buffer:
        yield Finding("hold-exceeds-buffer", vid,
                      f"{name}: {v.on_hold:,} buffer credits on hold of a {v.buffer:,} contribution")
    if v.risk is not None and v.reversible:
        total = v.quantity + v.buffer
        need = int(v.risk.buffer_rate * total)
        if v.buffer < need:
            yield Finding("buffer-below-assessed-rate", vid, (
                f"{name}: buffer of {v.buffer:,} is {v.buffer / total:.1%} of {total:,} issued; "
                f"the risk assessment of {v.risk.on} ({v.risk.tool}) sets "
                f"{v.risk.buffer_rate:.1%} ({need:,})"
            ))


def pool_findings(vintages: Iterable[Vintage]) -> list[Finding]:
    """Pools that cancelled more buffer credits for compensation than were contributed."""
    pools: dict[str, list[Any]] = {}
    for v in vintages:
        entry = pools.setdefault(v.pool, [0, 0, []])
        entry[0] += v.buffer
        drawn = v.buffer_cancelled_at(date.max)
        if drawn:
            entry[1] += drawn
            entry[2].append(str(v.id))
    return [
        Finding("buffer-overdrawn", tuple(ids), (
            f"pool {pool}: {cancelled:,} buffer credits drawn for compensation, "
            f"only {contributed:,} contributed: the pool owes the rest as its shortfall"
        ))
        for pool, (contributed, cancelled, ids) in sorted(pools.items())
        if cancelled > contributed
    ]


_DRIFT_FIELDS = ("quantity", "buffer", "outstanding_credits", "retired")


def drift_findings(engine: Engine, replayer: Replayer) -> list[Finding]:
    """Read-model rows that disagree with the replayed vintage at the same version."""
    seen: set[str] = set()
    findings = []
    cols = [pv.c.vintage_id, pv.c.version, *(pv.c[f] for f in _DRIFT_FIELDS)]
    with engine.connect() as conn:
        for vid, version, *values in conn.execute(select(*cols)):
            seen.add(vid)
            v = replayer.vintages.get(vid)
            if v is None:
                continue  # recorded after the replay began, or its stream is broken
            if version != v.version:
                if version < v.version:
                    findings.append(Finding("projection-drift", (vid,), (
                        f"vintage {vid}: read model at version {version}, log at {v.version}"
                    )))
                continue
            replayed = _replayed_row(v)
            for field, value in zip(_DRIFT_FIELDS, values):
                if int(value) != replayed[field]:
                    findings.append(Finding("projection-drift", (vid,), (
                        f"vintage {vid}: read model {field} {int(value):,}, "
                        f"replay {replayed[field]:,}"
                    )))
    for vid in sorted(set(replayer.vintages) - seen):
        findings.append(Finding("projection-drift", (vid,), f"vintage {vid}: no read-model row"))
    return findings


def failure_findings(engine: Engine) -> list[Finding]:
    """Events the read models could not take (the projector recorded them and went on)."""
    with engine.connect() as conn:
        rows = conn.execute(select(failures).order_by(failures.c.nid)).mappings().all()
    return [
        Finding("projection-failure", (r["vintage_id"],), (
            f"notification {r['nid']} ({r['topic'].rsplit(':', 1)[-1]}) could not be projected: "
            f"{r['error']}"
        ))
        for r in rows
    ]


def _replayed_row(v: Vintage) -> dict[str, int]:
    return {
        "quantity": v.quantity,
        "buffer": v.buffer,
        "outstanding_credits": v.outstanding_credits,
        "retired": sum(d.quantity for d in v.retirements),
    }


def check(app: LedgerApp, engine: Engine) -> list[Finding]:
    """Every check, findings ordered by kind; an empty list means the ledger is consistent.

    The read model should be caught up first (the CLI refreshes it); the log is replayed up
    to the notification that was last when the check began.
    """
    stop = app.recorder.max_notification_id() or 0
    replayer, findings = replay_findings(app, stop)
    findings += serial_findings(serial_ranges(engine))
    findings += same_issuance_findings(engine)
    for v in replayer.vintages.values():
        findings.extend(vintage_findings(v))
    findings += pool_findings(replayer.vintages.values())
    findings += drift_findings(engine, replayer)
    findings += failure_findings(engine)
    unique: dict[tuple[Any, ...], Finding] = {}
    for f in findings:  # a double issuance found by serials and by key is reported once
        key = (f.kind, frozenset(f.vintage_ids)) if f.kind == "double-issuance" else (f.kind, f)
        unique.setdefault(key, f)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(unique.values(), key=lambda f: (order[f.kind], f.vintage_ids))
