"""Feeds the read models from the ledger's notification log, exactly once.

The projector follows the log itself (this works on SQLite, which has no subscriptions,
and on PostgreSQL alike): it reads a page of notifications, computes every row change in
memory, and commits the rows and the new tracking position in one transaction. The
tracking update is conditional on the position it started from, so two projectors racing
on one database never both apply a page; a process killed mid-page leaves nothing behind.

A rebuild takes another route to the same tables, in one transaction: a first pass over
the events table (:mod:`projections.event_table`) turns ``Issued`` records into rows
without aggregates (:mod:`projections.issued`), shared out among worker processes for a
large SQLite ledger (:mod:`projections.first_pass`); a second pass replays, vintage by
vintage, the streams that have later events (:mod:`projections.second_pass`), shared out
too when there are many; roll-ups are summed in memory and written once, and secondary
indexes are built at the end.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.schema import CreateTable

from ledger.application import LedgerApp
from ledger.events import VintageEvent
from ledger.vintage import Vintage
from projections.event_table import EventTable, Record
from projections.first_pass import (
    FirstPass,
    Job,
    Worker,
    database_file,
    issuances,
    ranges,
    scratch_files,
)
from projections.issued import ISSUED_TOPIC, IssuedRows, RollKey
from projections.progress import Progress, Ticker
from projections.queries import NON_REVERSIBLE_ROLLED
from projections.read_model_writes import (
    PART,
    VINTAGE_KEY,
    bulk_settings,
    collector_paused,
    detach_parts,
    failure_row,
    fresh_tables,
    insert_sql,
    ledger_file,
    placeholder,
    secondary_indexes,
    write_rollups,
)
from projections.schedule import Schedule, schedule
from projections.second_pass import (
    Broken,
    PageChanges,
    Replayed,
    ReplayJob,
    apply,
    apply_scratch,
    decode,
    error_line,
    poison,
    replay_stream,
    shares,
    state_row,
)
from projections.storage.schema import (
    forget_fingerprint,
    read_models_current,
    stamp_fingerprint,
)
from projections.tables import (
    PROJECTION_TABLES,
    deltas,
    failures,
    metadata,
    tracking,
    vintages,
)

NAME = "ledger"
log = logging.getLogger("projections.projector")
CACHE_SIZE = 20_000
PARALLEL_FROM = 300_000
"""Notifications from which a SQLite rebuild's first pass is worth starting processes for."""
REPLAY_PARALLEL_FROM = 50_000
"""Later events (not issuances) from which a SQLite rebuild's second pass is worth starting
a process for (on two cores: about even at 30,000, half as fast again at 60,000 on an idle
machine; starting an interpreter costs about as much as replaying 20,000 events)."""
MAX_WORKERS = 8




class ProjectionConflict(Exception):
    """Another projector advanced the tracking position first; this page was discarded."""


class Projector:
    """Keeps ``proj_*`` tables in step with the event log."""

    def __init__(self, app: LedgerApp, engine: Engine, page_size: int = 10_000) -> None:
        self.app = app
        self.engine = engine
        self.page_size = page_size
        self._cache: OrderedDict[UUID, tuple[Vintage, Schedule]] = OrderedDict()
        self._issued = IssuedRows()
        # a rebuild of at least ``parallel_from`` notifications on a SQLite file shares its
        # first pass out among this many processes
        self.rebuild_workers = min(os.cpu_count() or 1, MAX_WORKERS)
        self.parallel_from = PARALLEL_FROM
        # and its second pass when the log has at least this many later events
        self.parallel_replay_from = REPLAY_PARALLEL_FROM
        # one page at a time per process: a web server thread and a writer may both ask
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ lifecycle

    def create_tables(self) -> None:
        """Create the read models, or rebuild them when this code's schema differs from the
        one they were built with (see :mod:`projections.storage.schema`)."""
        if not read_models_current(self.engine):
            self.rebuild()

    def drop_tables(self) -> None:
        """Drop the read models; the next start (or a rebuild) makes them again."""
        with self.engine.begin() as conn:
            forget_fingerprint(conn)
            metadata.drop_all(conn, tables=list(PROJECTION_TABLES))
        self._cache.clear()

    def rebuild(self, progress: Progress | None = None) -> int:
        """Replace the read models with ones built from the first event, in one transaction.

        Until it commits, readers see the old tables (SQLite) or wait for the new ones
        (PostgreSQL), and a rebuild that fails or is killed leaves the old ones in place.
        Being one transaction, it needs no per-page tracking: the roll-ups are summed in
        memory and written once, and the secondary indexes are built once at the end,
        which is several times faster than maintaining them row by row. Ledger writes on
        SQLite wait for it (up to the lock timeout). Returns how many notifications were
        processed.

        ``progress(events_done, events_total)`` is called at the start, after each page (or
        each phase of a pass shared among workers) and at the end: events count once, when
        applied (an issuance in the first pass, a later event in the second).
        """
        tick = Ticker(progress)
        with self._lock, collector_paused(), scratch_files(self.rebuild_workers) as files:
            self._cache.clear()
            try:
                with self.engine.connect() as conn, bulk_settings(conn):
                    try:
                        with conn.begin():
                            if conn.dialect.name == "sqlite":
                                # Python's sqlite3 begins only before data changes, so the
                                # DROP would commit on its own: begin here, taking the write
                                # lock now (which also holds the log still for the workers)
                                conn.exec_driver_sql("BEGIN IMMEDIATE")
                            return self._rebuild(conn, files, tick)
                    finally:
                        detach_parts(conn)  # SQLite detaches only outside a transaction
            finally:
                self._cache.clear()

    def _rebuild(self, conn: Connection, files: list[str], tick: Ticker) -> int:
        events = EventTable.of(self.app.recorder, conn.dialect.name)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with self._workers(conn, cursor, events, files) as workers:
                found, position = self._first_pass(conn, cursor, events, files, workers, tick)
                VINTAGE_KEY.create(conn)  # the second pass updates rows by vintage id
                rolled = found.rolled
                ids = sorted(found.changed_later)
                broken: Broken = []
                jobs: list[ReplayJob] = []
                if workers and found.later >= self.parallel_replay_from and len(ids) > 1:
                    ids, jobs = self._share_out(cursor, events, workers, ids, position, files)
                for start in range(0, len(ids), STREAMS_PER_QUERY):  # this process's streams
                    changes = PageChanges()
                    chunk = ids[start : start + STREAMS_PER_QUERY]
                    streams = events.streams(cursor, chunk, position)
                    for stream in streams:
                        broken += self._replay(stream, changes, rolled)
                    self._write(conn, changes)
                    tick.add(sum(len(stream) - 1 for stream in streams))
                broken += self._gather(cursor, workers, jobs, rolled)
        finally:
            cursor.close()
        write_rollups(conn, rolled)
        for record, error in broken:
            conn.execute(insert(failures).values(failure_row(record, error)))
        for index in secondary_indexes():
            index.create(conn)
        conn.execute(insert(tracking).values(name=NAME, position=position))
        # every vintage's non-reversible credits are in the roll-ups now (queries read them)
        conn.execute(insert(tracking).values(name=NON_REVERSIBLE_ROLLED, position=0))
        stamp_fingerprint(conn)  # the tables now have this code's schema
        tick.finish(found.processed)
        return found.processed

    @contextmanager
    def _workers(
        self, conn: Connection, cursor: Any, events: EventTable, files: list[str]
    ) -> Iterator[list[Worker]]:
        """Worker processes for a large SQLite ledger (none on PostgreSQL, or for a small
        one): one per scratch file when the first pass will be shared out; one fewer when
        only the second will (the log has many later events: this process replays a share
        too). Started now, so that their start-up overlaps the work done here; stopped
        whatever happens."""
        started: list[Worker] = []
        try:
            if ledger_file(conn, cursor) is not None and self.rebuild_workers > 1:
                first, last = events.bounds(cursor)
                count = last - first + 1 if last else 0
                if count >= self.parallel_from:
                    wanted = files
                elif (count >= self.parallel_replay_from
                      and events.later(cursor) >= self.parallel_replay_from):
                    wanted = files[1:]
                else:
                    wanted = []
                for path in wanted:
                    started.append(Worker(str(Path(path).with_suffix(".log"))))
            yield started
        except BaseException:
            for worker in started:
                worker.stop(now=True)  # their work is of no use now
            raise
        finally:
            for worker in started:
                worker.stop()

    def _first_pass(
        self, conn: Connection, cursor: Any, events: EventTable, files: list[str],
        workers: list[Worker], tick: Ticker,
    ) -> tuple[FirstPass, int]:
        """The issuances' rows, in this process or, for a large SQLite ledger, shared out
        among the worker processes (:mod:`projections.first_pass`). Returns what else the
        pass found and the last notification id it read."""
        first, last = events.bounds(cursor)
        tick.start(last - first + 1 if last else 0)
        ledger = ledger_file(conn, cursor)
        parts = ranges(first, last, len(workers)) if workers else []
        if ledger is None or not last or last - first + 1 < self.parallel_from or len(parts) < 2:
            fresh_tables(conn)
            found, position = FirstPass(), 0
            while page := events.after(cursor, position, max(self.page_size, REBUILD_PAGE)):
                rows = issuances(page, self._issued, found)
                self._write(conn, PageChanges(new={row[0]: row for row in rows}))
                position = page[-1][0]  # its notification id
                tick.add(len(rows))
            return found, position
        create = str(CreateTable(vintages).compile(dialect=conn.dialect))
        jobs = [Job(ledger, events, after, upto, path, create, insert_sql("?"), REBUILD_PAGE)
                for (after, upto), path in zip(parts, files, strict=False)]
        for worker, job in zip(workers, jobs, strict=False):
            worker.send(job)
        fresh_tables(conn)  # while they work
        found = FirstPass()
        for worker, _ in zip(workers, jobs, strict=False):
            found.add(worker.result())
        for i, job in enumerate(jobs):
            conn.exec_driver_sql(f"ATTACH DATABASE ? AS {PART}{i}", (job.scratch,))
            copied = conn.exec_driver_sql(
                f"INSERT INTO {vintages.name} SELECT * FROM {PART}{i}.{vintages.name}")
            tick.add(max(0, copied.rowcount))
        return found, last

    def _share_out(
        self, cursor: Any, events: EventTable, workers: list[Worker], ids: list[str],
        upto: int, files: list[str],
    ) -> tuple[list[str], list[ReplayJob]]:
        """Share the second pass out: the worker processes each replay a run of the streams
        into a scratch file (:mod:`projections.second_pass`) while this process replays the
        first run itself. Returns that run, and the jobs sent."""
        ledger = database_file(cursor.connection)
        assert ledger is not None  # workers are started for a SQLite file only
        runs = shares(ids, len(workers) + 1)
        jobs = [ReplayJob(ledger, events, self.app.mapper, run, upto,
                          str(Path(path).with_name(f"replay{i}.db")), STREAMS_PER_QUERY)
                for i, (run, path) in enumerate(zip(runs[1:], files, strict=False))]
        for worker, job in zip(workers, jobs, strict=False):
            worker.send(job)
        return list(runs[0]), jobs

    def _gather(
        self, cursor: Any, workers: list[Worker], jobs: list[ReplayJob],
        rolled: dict[RollKey, int],
    ) -> Broken:
        """Apply the workers' second-pass rows as each finishes, and add their roll-up
        amounts to ``rolled``. Returns the events they could not apply."""
        broken: Broken = []
        for worker, job in zip(workers, jobs, strict=False):
            replayed: Replayed = worker.result()
            apply_scratch(cursor, job.scratch)
            for key, amount in replayed.rolled.items():
                rolled[key] = rolled.get(key, 0) + amount
            broken += replayed.broken
        return broken

    def _replay(
        self, stream: list[Record], changes: PageChanges, rolled: dict[RollKey, int]
    ) -> Broken:
        """A rebuild's second pass, for one vintage: its stream replayed once, in order
        (:func:`projections.second_pass.replay_stream`)."""
        return replay_stream(self.app.mapper, stream, changes, rolled)

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
            page = self._read(start, self.page_size)
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

    def _event(self, record: Record) -> object:
        """The record decoded by the application's mapper (upcasting older versions)."""
        return decode(self.app.mapper, record)

    def _apply(
        self, nid: int, event: VintageEvent, vintage: Vintage, before: Schedule,
        changes: PageChanges, rolled: dict[RollKey, int],
    ) -> Schedule:
        """Apply a later event to its vintage (:func:`projections.second_pass.apply`)."""
        return apply(nid, event, vintage, before, changes, rolled)

    def _read(self, after: int, limit: int) -> list[Record]:
        page = self.app.recorder.select_notifications(start=after + 1, limit=limit)
        return [Record(n.id, str(n.originator_id), n.originator_version, n.topic, n.state)
                for n in page]

    def _process(self, start: int, page: Sequence[Record]) -> None:
        rolled: dict[RollKey, int] = {}
        try:
            changes = self._compute(page, rolled)
            self._commit(start, page[-1].nid, changes, rolled)
        except ProjectionConflict:
            self._cache.clear()
            raise
        except Exception as e:  # sorted by poison: data errors only
            self._cache.clear()
            if not poison(e):
                raise
            if len(page) == 1:
                self._skip(start, page[0])
                return
            # one bad event must not stop the world: go one by one to find it
            position = start
            for record in page:
                self._process(position, [record])
                position = record.nid
        except BaseException:
            self._cache.clear()
            raise

    def _skip(self, start: int, record: Record) -> None:
        """Record why a notification could not be projected, and move past it."""
        error = error_line()
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(tracking)
                .where(tracking.c.name == NAME, tracking.c.position == start)
                .values(position=record.nid)
            )
            if moved.rowcount != 1:
                raise ProjectionConflict(f"tracking moved past {start}")
            conn.execute(insert(failures).values(failure_row(record, error)))
        log.error("projection failed", extra={"fields": {
            "notification": record.nid, "vintage_id": record.originator_id, "error": error}})

    def failures(self) -> list[dict[str, Any]]:
        """Notifications the read models could not take, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(failures).order_by(failures.c.nid)).mappings().all()
        return [dict(r) for r in rows]

    def _compute(self, page: Sequence[Record], rolled: dict[RollKey, int]) -> PageChanges:
        """The page's row changes; its roll-up amounts are added to ``rolled``."""
        changes = PageChanges()
        issued_row = self._issued.row
        for record in page:
            nid, vid, version, topic, state = record
            if topic == ISSUED_TOPIC:
                changes.new[vid] = issued_row(nid, vid, state, rolled)
                continue
            event = self._event(record)
            if not isinstance(event, VintageEvent):
                continue  # other aggregates (stress-test records) have no figures here
            vintage, before = self._load(UUID(vid), version - 1)
            self._remember(vintage, self._apply(nid, event, vintage, before, changes, rolled))
            # written after the page's new rows, so this holds for one issued in it too
            changes.changed.setdefault(vid, {}).update(state_row(vintage))
        return changes

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

    def _commit(self, start: int, end: int, changes: PageChanges, rolled: dict[RollKey, int]) -> None:
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(tracking)
                .where(tracking.c.name == NAME, tracking.c.position == start)
                .values(position=end)
            )
            if moved.rowcount != 1:
                raise ProjectionConflict(f"tracking moved past {start}")
            self._write(conn, changes)
            write_rollups(conn, rolled)

    def _write(self, conn: Connection, changes: PageChanges) -> None:
        if changes.new:
            # the DBAPI's own executemany: the bulk of a rebuild, with nothing per row
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.executemany(insert_sql(placeholder(conn)), list(changes.new.values()))
            finally:
                cursor.close()
        if changes.changed:
            # every changed row carries the same state columns: one executemany
            rows = list(changes.changed.items())
            columns = [c for c in rows[0][1] if c != "vintage_id"]
            conn.execute(
                update(vintages)
                .where(vintages.c.vintage_id == bindparam("v_id"))
                .values({c: bindparam(c) for c in columns}),
                [{"v_id": vid, **{c: r[c] for c in columns}} for vid, r in rows],
            )
        if changes.deltas:
            conn.execute(insert(deltas), changes.deltas)


REBUILD_PAGE = 50_000
"""Notifications read per page during a rebuild (pages only bound memory there)."""
STREAMS_PER_QUERY = 500
"""Vintage streams a rebuild's second pass reads per query."""
