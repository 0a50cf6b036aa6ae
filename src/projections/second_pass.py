"""A rebuild's second pass: the streams of the vintages that changed after their issuance,
each replayed once, in order, through the aggregate's own fold.

An event's effect depends only on its own vintage's earlier events, so taking the streams
one by one gives exactly what following the log does, with one aggregate in hand at a time
instead of a cache that a large registry would overflow; and so the streams can be shared
out too. For a large SQLite ledger each worker process (:class:`ReplayJob`, started like
the first pass's, :mod:`projections.first_pass`) takes a range of vintage ids, reads their
streams on its own read-only connection and writes the vintages' new state and their dated
deltas into a scratch file of its own; the rebuild's connection then applies them
(:func:`apply_scratch`). Decoding and folding, the bulk of this pass, is what the workers
share; the rows are the same :func:`replay_stream` builds in one process.
"""

from __future__ import annotations

import json
import sqlite3
import traceback
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper, PersistenceError, StoredEvent
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from ledger.calendar import add_years
from ledger.events import Issued, VintageEvent
from ledger.replay import Record, fold
from ledger.vintage import Vintage
from projections.event_table import EventTable
from projections.issued import RollKey, record_time
from projections.schedule import Schedule, difference, schedule
from projections.tables import deltas, record_time_text, vintages

Broken = list[tuple[Record, str]]
"""Events a replay could not apply, each with its error (they go to ``proj_failures``)."""


@dataclass
class PageChanges:
    """Every row change a page of notifications makes, computed before anything is written."""

    new: dict[str, list[Any]] = field(default_factory=dict)  # issued in this page (ROW_COLUMNS)
    changed: dict[str, dict[str, Any]] = field(default_factory=dict)  # state columns only
    deltas: list[dict[str, Any]] = field(default_factory=list)


def decode(mapper: Mapper[UUID], record: Record, originator: UUID | None = None) -> object:
    """The record decoded by the application's mapper (upcasting older versions); a
    stream's replay passes its ``originator`` id, parsed once."""
    stored = StoredEvent(originator_id=originator or UUID(record.originator_id),
                         originator_version=record.originator_version, topic=record.topic,
                         state=record.state)
    return mapper.to_domain_event(stored)


def apply(
    nid: int, event: VintageEvent, vintage: Vintage, before: Schedule,
    changes: PageChanges, rolled: dict[RollKey, int],
) -> Schedule:
    """Apply a later event to its vintage; its dated deltas and roll-up changes are the
    difference of the vintage's schedules. Returns the schedule after it."""
    fold(vintage, event)  # in place
    current = schedule(vintage)
    change = difference(before, current)
    if change:
        recorded_at = record_time(event.timestamp.isoformat())
        changes.deltas.extend(delta_rows(nid, recorded_at, event.on, vintage, change))
        roll_up(rolled, vintage, change)
    return current


def replay_stream(
    mapper: Mapper[UUID], stream: list[Record], changes: PageChanges, rolled: dict[RollKey, int]
) -> Broken:
    """One vintage's stream replayed once, in order: its later events' deltas and roll-up
    amounts, and its state after the last. Returns the events it could not apply."""
    vid = stream[0].originator_id
    originator = UUID(vid)
    issued = decode(mapper, stream[0], originator)
    if not isinstance(issued, Issued):
        return []  # another kind of aggregate (stress-test records) has no figures here
    vintage = fold(None, issued)
    before = schedule(vintage)
    for i, record in enumerate(stream[1:], start=1):
        try:
            event = decode(mapper, record, originator)
            if isinstance(event, VintageEvent):
                before = apply(record.nid, event, vintage, before, changes, rolled)
        except Exception as e:
            if not poison(e):
                raise
            # as following the log would: this event and every later one of the stream
            # cannot be applied; they are recorded, the rest of the ledger goes on
            error = error_line()
            changes.changed[vid] = state_row(vintage)
            return [(record, error) for record in stream[i:]]
    changes.changed[vid] = state_row(vintage)
    return []


def error_line() -> str:
    """The exception being handled, as one line."""
    return traceback.format_exc(limit=0).strip().splitlines()[-1][:2_000]


def poison(e: BaseException) -> bool:
    """An error in an event's data (it will fail the same way every time), as opposed to
    the store being unavailable or locked, which must stop and be retried."""
    if isinstance(e, (DataError, IntegrityError)):
        return True
    return not isinstance(e, (SQLAlchemyError, PersistenceError, OSError, sqlite3.Error))


# ---------------------------------------------------------------------- worker processes


@dataclass
class Replayed:
    """What a worker's replay found besides the rows it wrote."""

    rolled: dict[RollKey, int] = field(default_factory=dict)
    broken: Broken = field(default_factory=list)


@dataclass(frozen=True)
class ReplayJob:
    """One worker's share: the streams of ``ids`` up to notification ``upto``."""

    ledger: str
    events: EventTable
    mapper: Mapper[UUID]
    ids: tuple[str, ...]
    upto: int
    scratch: str
    per_query: int

    def run(self) -> Replayed:
        """Replay the streams, writing their rows into the job's scratch file."""
        found = Replayed()
        source = sqlite3.connect(f"{Path(self.ledger).resolve().as_uri()}?mode=ro", uri=True,
                                 isolation_level=None)
        target = sqlite3.connect(self.scratch, isolation_level=None)
        try:
            target.execute("PRAGMA journal_mode=OFF")  # a scratch file: nothing to recover
            target.execute("PRAGMA synchronous=OFF")
            target.execute(f"CREATE TABLE changed ({_listed(STATE_COLUMNS)})")
            target.execute(f"CREATE TABLE deltas ({_listed(DELTA_COLUMNS)})")
            target.execute("BEGIN")
            cursor = source.cursor()
            for start in range(0, len(self.ids), self.per_query):
                changes = PageChanges()
                for stream in self.events.streams(cursor, self.ids[start:start + self.per_query],
                                                  self.upto):
                    found.broken += replay_stream(self.mapper, stream, changes, found.rolled)
                target.executemany(_insert("changed", STATE_COLUMNS),
                                   [[r[c] for c in STATE_COLUMNS] for r in changes.changed.values()])
                target.executemany(_insert("deltas", DELTA_COLUMNS),
                                   [[d[c] for c in DELTA_COLUMNS] for d in changes.deltas])
            target.execute("COMMIT")
        finally:
            source.close()
            target.close()
        return found


def apply_scratch(cursor: Any, scratch: str) -> None:
    """Apply a worker's rows on the rebuild's connection (its DBAPI ``cursor``): the new
    state of each vintage it replayed, and the dated deltas."""
    source = sqlite3.connect(f"{Path(scratch).resolve().as_uri()}?mode=ro", uri=True)
    try:
        columns = STATE_COLUMNS[1:]
        cursor.executemany(
            f"UPDATE {vintages.name} SET {', '.join(f'{_quoted(c)} = ?' for c in columns)} "
            "WHERE vintage_id = ?",
            source.execute(f"SELECT {_listed(columns)}, vintage_id FROM changed"),
        )
        cursor.executemany(_insert(deltas.name, DELTA_COLUMNS),
                           source.execute(f"SELECT {_listed(DELTA_COLUMNS)} FROM deltas"))
    finally:
        source.close()


def shares(ids: list[str], parts: int) -> list[tuple[str, ...]]:
    """``ids`` (sorted) cut into ``parts`` contiguous runs of nearly equal length."""
    cuts = [len(ids) * i // parts for i in range(parts + 1)]
    return [tuple(ids[cuts[i]:cuts[i + 1]]) for i in range(parts) if cuts[i + 1] > cuts[i]]


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return (f"INSERT INTO {table} ({_listed(columns)}) "
            f"VALUES ({', '.join('?' * len(columns))})")


def _quoted(column: str) -> str:
    return f'"{column}"'


def _listed(columns: tuple[str, ...]) -> str:
    return ", ".join(_quoted(c) for c in columns)


# ---------------------------------------------------------------------- rows

def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def state_row(v: Vintage) -> dict[str, Any]:
    """Columns that later events change (everything recorded, whatever its date)."""
    due = v.due_at(date.max)
    interval = v.rules.risk_reassessment_years
    risk_due = None
    if interval:
        risk_due = add_years(v.risk.on if v.risk else v.issued_on, interval)
    if v.period_closed:
        status = "ended"
    elif not v.reversible:
        status = "non-reversible"
    elif v.transfer is not None:
        status = "transferred"
    elif v.lapse_recorded:
        status = "lapsed"
    else:
        status = "monitored"
    return {
        "vintage_id": str(v.id),
        "verification_due": _iso(v.verification_due),
        "lapse_arises_on": _iso(v.next_lapse_on()),
        "next_default_on": _iso(v.next_default_on()),
        "risk_due": _iso(risk_due),
        "lapse_recorded": v.lapse_recorded,
        "period_ended": v.period_closed,
        "bearer": v.transfer.to if v.transfer else v.pool,
        "status": status,
        "exposure_now": 0 if v.transfer or not v.reversible or v.exposure_start >= v.period_end
        else max(0, v.quantity - v.gone_at(date.max)),
        "outstanding_credits": v.outstanding_credits,
        "retired": sum(d.quantity for d in v.retirements),
        "due_proponent": due["proponent"],
        "due_pool": due["pool"],
        "buffer_rate": None if v.risk is None else f"{v.risk.buffer_rate:.4f}",
        "annual_probability": None if v.risk is None else f"{v.risk.annual_probability:.6f}",
        "labels": json.dumps([{"label": a, "innovation": b} for a, b in v.labels]) if v.labels else None,
        "version": v.version,
        **_transfer_columns(v),
    }


def _transfer_columns(v: Vintage) -> dict[str, Any]:
    t = v.transfer
    term = v.fund_term
    return {
        "transfer_to": t.to if t else None,
        "transfer_on": t.on.isoformat() if t else None,
        "transfer_recorded_at": record_time_text(t.recorded_at) if t and t.recorded_at else None,
        "term_end": term[1].isoformat() if term else None,
    }


def delta_rows(
    nid: int, recorded_at: str, on: date, v: Vintage, changes: Schedule
) -> list[dict[str, Any]]:
    return [
        {
            "nid": nid,
            "seq": seq,
            "recorded_at": recorded_at,
            "vintage_id": str(v.id),
            "measure": measure,
            "key": key,
            "day": day.isoformat(),
            "on": on.isoformat(),
            "amount": amount,
            "program": v.program,
            "pool": v.pool,
            "project": v.project,
            "vintage_year": v.vintage_year or 0,
        }
        for seq, ((measure, key, day), amount) in enumerate(sorted(changes.items()))
    ]


def roll_up(
    rolled: dict[tuple[str, str, str, str, str], int], v: Vintage, changes: Schedule
) -> None:
    for (measure, key, day), amount in changes.items():
        k = (measure, key, day.isoformat(), v.program, v.pool)
        rolled[k] = rolled.get(k, 0) + amount


#: The columns :func:`state_row` gives, in its order (the vintage id first).
STATE_COLUMNS = ("vintage_id", "verification_due", "lapse_arises_on", "next_default_on",
                 "risk_due", "lapse_recorded", "period_ended", "bearer", "status", "exposure_now",
                 "outstanding_credits", "retired", "due_proponent", "due_pool", "buffer_rate",
                 "annual_probability", "labels", "version", "transfer_to", "transfer_on",
                 "transfer_recorded_at", "term_end")
#: ``proj_deltas``'s columns, in the table's order.
DELTA_COLUMNS = tuple(c.name for c in deltas.columns)
