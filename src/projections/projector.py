"""Feeds the read models from the ledger's notification log, exactly once.

The projector follows the log itself (this works on SQLite, which has no subscriptions,
and on PostgreSQL alike): it reads a page of notifications, computes every row change in
memory, and commits the rows and the new tracking position in one transaction. The
tracking update is conditional on the position it started from, so two projectors racing
on one database never both apply a page; a process killed mid-page leaves nothing behind.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from sqlalchemy import Engine, bindparam, insert, select, update

from ledger import clock
from ledger.application import LedgerApp
from ledger.calendar import add_years
from ledger.events import Issued, VintageEvent
from ledger.mapper import decode_state
from ledger.vintage import Vintage
from projections.schedule import Schedule, difference, schedule
from projections.tables import (
    PROJECTION_TABLES,
    deltas,
    metadata,
    record_time_text,
    rollup,
    rollup_year,
    tracking,
    vintages,
)

NAME = "ledger"
CACHE_SIZE = 20_000


class ProjectionConflict(Exception):
    """Another projector advanced the tracking position first; this page was discarded."""


class Projector:
    """Keeps ``proj_*`` tables in step with the event log."""

    def __init__(self, app: LedgerApp, engine: Engine, page_size: int = 10_000) -> None:
        self.app = app
        self.engine = engine
        self.page_size = page_size
        self._cache: OrderedDict[UUID, tuple[Vintage, Schedule]] = OrderedDict()
        # one page at a time per process: a web server thread and a writer may both ask
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle

    def create_tables(self) -> None:
        metadata.create_all(self.engine, tables=list(PROJECTION_TABLES))
        with self.engine.begin() as conn:
            if conn.execute(select(tracking.c.position).where(tracking.c.name == NAME)).first() is None:
                conn.execute(insert(tracking).values(name=NAME, position=0))

    def drop_tables(self) -> None:
        metadata.drop_all(self.engine, tables=list(PROJECTION_TABLES))
        self._cache.clear()

    def rebuild(self) -> int:
        """Drop the read models and rebuild them from the first event.

        Secondary indexes are dropped for the bulk load and built once at the end, which
        is several times faster than maintaining them row by row.
        """
        self.drop_tables()
        self.create_tables()
        with self.engine.begin() as conn:
            for index in _secondary_indexes():
                index.drop(conn)
        try:
            return self.catch_up()
        finally:
            with self.engine.begin() as conn:
                for index in _secondary_indexes():
                    index.create(conn, checkfirst=True)

    def position(self) -> int:
        with self.engine.connect() as conn:
            value = conn.execute(select(tracking.c.position).where(tracking.c.name == NAME)).scalar()
        return int(value or 0)

    def lag(self) -> int:
        """How many notifications are recorded but not yet projected."""
        return max(0, (self.app.recorder.max_notification_id() or 0) - self.position())

    def catch_up(self, max_pages: int | None = None) -> int:
        """Process notifications until none are left; returns how many were processed."""
        with self._lock:
            return self._catch_up(max_pages)

    def _catch_up(self, max_pages: int | None) -> int:
        processed = 0
        pages = 0
        while max_pages is None or pages < max_pages:
            start = self.position()
            page = self.app.recorder.select_notifications(
                start=start + 1, limit=self.page_size
            )
            if not page:
                break
            try:
                self._process(start, page)
            except ProjectionConflict:
                self._cache.clear()
                continue
            processed += len(page)
            pages += 1
        return processed

    # ------------------------------------------------------------------ processing

    def _process(self, start: int, page: Sequence[Notification]) -> None:
        vintage_rows: dict[str, dict[str, Any]] = {}
        delta_rows: list[dict[str, Any]] = []
        rolled: dict[tuple[str, str, str, str, str], int] = {}
        try:
            for n in page:
                if n.topic == ISSUED_TOPIC:
                    row, changes = issued_figures(n)
                    vintage_rows[row["vintage_id"]] = row
                    _roll_up_plain(rolled, row, changes)
                    continue
                event = self.app.mapper.to_domain_event(n)
                if not isinstance(event, VintageEvent):
                    continue  # other aggregates (stress-test records) have no figures here
                recorded_at = _utc(event.timestamp)
                vid = str(n.originator_id)
                vintage, before = self._load(UUID(str(n.originator_id)), n.originator_version - 1)
                event.mutate(vintage)
                current = schedule(vintage)
                changes = difference(before, current)
                delta_rows.extend(_delta_rows(n.id, recorded_at, vintage, changes))
                self._remember(vintage, current)
                _roll_up(rolled, vintage, changes)
                vintage_rows.setdefault(vid, {}).update(_state_row(vintage))
            self._commit(start, page[-1].id, vintage_rows, delta_rows, rolled)
        except BaseException:
            self._cache.clear()
            raise

    def _load(self, vid: UUID, version: int) -> tuple[Vintage, Schedule]:
        cached = self._cache.get(vid)
        if cached is not None and cached[0].version == version:
            self._cache.move_to_end(vid)
            return cached
        vintage: Vintage = self.app.repository.get(vid, version=version)
        return vintage, schedule(vintage)

    def _remember(self, vintage: Vintage, current: Schedule) -> None:
        self._cache[vintage.id] = (vintage, current)
        self._cache.move_to_end(vintage.id)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _commit(
        self,
        start: int,
        end: int,
        vintage_rows: dict[str, dict[str, Any]],
        delta_rows: list[dict[str, Any]],
        rolled: dict[tuple[str, str, str, str, str], int],
    ) -> None:
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(tracking)
                .where(tracking.c.name == NAME, tracking.c.position == start)
                .values(position=end)
            )
            if moved.rowcount != 1:
                raise ProjectionConflict(f"tracking moved past {start}")
            new_rows = [r for r in vintage_rows.values() if "issued_on" in r]
            changed = [r for r in vintage_rows.values() if "issued_on" not in r]
            if new_rows:
                # plain DBAPI executemany: the bulk of a rebuild, without per-row compilation
                conn.exec_driver_sql(
                    _insert_sql(self.engine), [tuple(r[c] for c in VINTAGE_COLUMNS) for r in new_rows]
                )
            if changed:
                # every changed row carries the same state columns: one executemany
                columns = [c for c in changed[0] if c != "vintage_id"]
                conn.execute(
                    update(vintages)
                    .where(vintages.c.vintage_id == bindparam("v_id"))
                    .values({c: bindparam(c) for c in columns}),
                    [{"v_id": r["vintage_id"], **{c: r[c] for c in columns}} for r in changed],
                )
            if delta_rows:
                conn.execute(insert(deltas), delta_rows)
            if rolled:
                conn.exec_driver_sql(
                    _rollup_sql(self.engine, rollup, "day"),
                    [(*k, amount) for k, amount in rolled.items()],
                )
                yearly: dict[tuple[str, str, int, str, str], int] = {}
                for (measure, key, day, program, pool), amount in rolled.items():
                    k = (measure, key, int(day[:4]), program, pool)
                    yearly[k] = yearly.get(k, 0) + amount
                conn.exec_driver_sql(
                    _rollup_sql(self.engine, rollup_year, "year"),
                    [(*k, amount) for k, amount in yearly.items()],
                )


ISSUED_TOPIC = get_topic(Issued)
VINTAGE_COLUMNS = tuple(c.name for c in vintages.columns)


def _secondary_indexes() -> list[Any]:
    return [ix for t in (vintages, deltas, rollup) for ix in t.indexes if not ix.unique]


def _rollup_sql(engine: Engine, table: Any, period: str) -> str:
    """Add amounts to a roll-up (insert or increment), as plain DBAPI executemany."""
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    keys = f"measure, key, {period}, program, pool"
    return (
        f"INSERT INTO {table.name} ({keys}, amount) VALUES ({', '.join([mark] * 6)}) "
        f"ON CONFLICT ({keys}) DO UPDATE SET amount = {table.name}.amount + excluded.amount"
    )


def _insert_sql(engine: Engine) -> str:
    mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {vintages.name} ({', '.join(VINTAGE_COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(VINTAGE_COLUMNS))})"
    )


def issued_figures(n: Notification) -> tuple[dict[str, Any], Schedule]:
    """A new vintage's row and baseline schedule straight from its ``Issued`` record.

    Bulk path: no aggregate, no validation, the same pure clock functions the aggregate
    uses (tests check it agrees with the aggregate path for every profile).
    """
    state = decode_state(Issued, n.state)
    rules = state["rules"]
    on = date.fromisoformat(state["on"])
    crediting_start = _day(state.get("crediting_start"))
    start = clock.clock_start(rules["clock"], on, crediting_start)
    end = clock.period_end(
        start, rules["period_years"], rules["whichever_later"], _day(state.get("crediting_end"))
    )
    due = clock.verification_due(on, rules.get("verification_interval_years"))
    risk_years = rules.get("risk_reassessment_years")
    quantity, buffer_, pool = state["quantity"], state["buffer"], state["pool"]
    exposure_start = max(on, start)
    changes: Schedule = {}
    if exposure_start < end and quantity:
        changes[("exposure", pool, exposure_start)] = quantity
        changes[("exposure", pool, end)] = -quantity
    if buffer_:
        changes[("contributions", pool, on)] = buffer_
    vintage_id = str(n.originator_id)
    row = {
        "vintage_id": vintage_id,
        "program": state["program"],
        "pool": pool,
        "project": state["project"],
        "vintage_year": state.get("vintage_year") or 0,
        "serial_first": state.get("serial_first"),
        "serial_last": state.get("serial_last"),
        "source_key": state.get("source_key"),
        "corresponding_adjustment": state.get("corresponding_adjustment"),
        "quantity": quantity,
        "buffer": buffer_,
        "issued_on": on.isoformat(),
        "exposure_start": exposure_start.isoformat(),
        "period_end": end.isoformat(),
        "issued_recorded_at": _utc_text(state["timestamp"]),
        "issued_nid": n.id,
        "verification_due": _iso(due),
        "lapse_arises_on": _iso(clock.lapse_arises_on(due, end, rules.get("grace_days", 0))),
        "next_default_on": None,
        "risk_due": _iso(add_years(on, risk_years)) if risk_years else None,
        "lapse_recorded": False,
        "period_ended": False,
        "bearer": pool,
        "status": "monitored",
        "exposure_now": quantity,
        "outstanding_credits": quantity,
        "retired": 0,
        "due_proponent": 0,
        "due_pool": 0,
        "buffer_rate": None,
        "annual_probability": None,
        "risk_class": state.get("risk_class"),
        "labels": None,
        "version": 1,
    }
    return row, changes


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _utc_text(stamp: str) -> str:
    """A stored record time as fixed-width UTC text (same as :func:`_utc`)."""
    return _utc(datetime.fromisoformat(stamp))


def _roll_up_plain(
    rolled: dict[tuple[str, str, str, str, str], int], row: dict[str, Any], changes: Schedule
) -> None:
    for (measure, key, day), amount in changes.items():
        k = (measure, key, day.isoformat(), row["program"], row["pool"])
        rolled[k] = rolled.get(k, 0) + amount


_utc = record_time_text


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def _issued_row(v: Vintage, recorded_at: str, nid: int) -> dict[str, Any]:
    return {
        "vintage_id": str(v.id),
        "program": v.program,
        "pool": v.pool,
        "project": v.project,
        "vintage_year": v.vintage_year or 0,
        "serial_first": v.serial_first,
        "serial_last": v.serial_last,
        "source_key": v.source_key,
        "corresponding_adjustment": v.corresponding_adjustment,
        "quantity": v.quantity,
        "buffer": v.buffer,
        "issued_on": v.issued_on.isoformat(),
        "exposure_start": max(v.issued_on, v.clock_start).isoformat(),
        "period_end": v.period_end.isoformat(),
        "issued_recorded_at": recorded_at,
        "issued_nid": nid,
        "risk_class": v.risk_class,
    }


def _state_row(v: Vintage) -> dict[str, Any]:
    """Columns that later events change (everything recorded, whatever its date)."""
    due = {"proponent": 0, "pool": 0}
    next_default: date | None = None
    for r in v.reversals.values():
        if r.outstanding:
            due[r.obligor if r.defaulted_on is None else "pool"] += r.outstanding
        deadline = v.surrender_deadline(r)
        if deadline is not None and r.defaulted_on is None and r.outstanding_at(deadline) > 0:
            candidate = date.fromordinal(deadline.toordinal() + 1)
            next_default = candidate if next_default is None else min(next_default, candidate)
    interval = v.rules.risk_reassessment_years
    risk_due = None
    if interval:
        risk_due = add_years(v.risk.on if v.risk else v.issued_on, interval)
    if v.period_closed:
        status = "ended"
    elif v.transfer is not None:
        status = "transferred"
    elif v.lapse_recorded:
        status = "lapsed"
    else:
        status = "monitored"
    gone = sum(d.quantity for d in v.cancellations + v.invalidations)
    return {
        "vintage_id": str(v.id),
        "verification_due": _iso(v.verification_due),
        "lapse_arises_on": None if v.lapse_recorded else _iso(v.lapse_arises_on),
        "next_default_on": _iso(next_default),
        "risk_due": _iso(risk_due),
        "lapse_recorded": v.lapse_recorded,
        "period_ended": v.period_closed,
        "bearer": v.transfer[1] if v.transfer else v.pool,
        "status": status,
        "exposure_now": 0 if v.transfer else v.quantity - gone,
        "outstanding_credits": v.outstanding_credits,
        "retired": sum(d.quantity for d in v.retirements),
        "due_proponent": due["proponent"],
        "due_pool": due["pool"],
        "buffer_rate": None if v.risk is None else f"{v.risk.buffer_rate:.4f}",
        "annual_probability": None if v.risk is None else f"{v.risk.annual_probability:.6f}",
        "labels": json.dumps([{"label": a, "innovation": b} for a, b in v.labels]) if v.labels else None,
        "version": v.version,
    }



def _delta_rows(nid: int, recorded_at: str, v: Vintage, changes: Schedule) -> list[dict[str, Any]]:
    return [
        {
            "nid": nid,
            "seq": seq,
            "recorded_at": recorded_at,
            "vintage_id": str(v.id),
            "measure": measure,
            "key": key,
            "day": day.isoformat(),
            "amount": amount,
            "program": v.program,
            "pool": v.pool,
            "project": v.project,
            "vintage_year": v.vintage_year or 0,
        }
        for seq, ((measure, key, day), amount) in enumerate(sorted(changes.items()))
    ]


def _roll_up(
    rolled: dict[tuple[str, str, str, str, str], int], v: Vintage, changes: Schedule
) -> None:
    for (measure, key, day), amount in changes.items():
        k = (measure, key, day.isoformat(), v.program, v.pool)
        rolled[k] = rolled.get(k, 0) + amount
