"""A rebuild's first pass over a SQLite ledger, shared out among worker processes.

Decoding a million ``Issued`` records and binding their rows is the bulk of a rebuild,
and it is Python work that one process does on one core. Here each worker takes a range
of notification ids, reads the ledger file on its own read-only connection (the rebuild's
transaction holds the write lock, so the log cannot move meanwhile), and writes its rows
into a scratch SQLite file of its own; the rebuild's connection then copies those tables in
with ``INSERT INTO ... SELECT``, which SQLite does without Python. The rows, roll-up amounts
and the set of vintages changed after their issuance are exactly those of the one-process
pass: the same :class:`~projections.issued.IssuedRows` builds them.

The worker processes (:class:`Worker`) are started when the rebuild begins and serve its
second pass too (:mod:`projections.second_pass`): one interpreter start each per rebuild.
"""

from __future__ import annotations

import gc
import os
import pickle
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from projections.event_table import EventTable, Row
from projections.issued import ISSUED_TOPIC, IssuedRows, RollKey


@dataclass
class FirstPass:
    """What the first pass found besides the rows: what it adds to the roll-ups, which
    vintages have later events, how many notifications it read."""

    rolled: dict[RollKey, int] = field(default_factory=dict)
    changed_later: set[str] = field(default_factory=set)
    processed: int = 0
    later: int = 0  # events other than issuances: the second pass's share of the work

    def add(self, other: FirstPass) -> None:
        for key, amount in other.rolled.items():
            self.rolled[key] = self.rolled.get(key, 0) + amount
        self.changed_later |= other.changed_later
        self.processed += other.processed
        self.later += other.later


@dataclass(frozen=True)
class Job:
    """One worker's share: notifications in (after, upto] of the ledger at ``ledger``."""

    ledger: str
    events: EventTable
    after: int
    upto: int
    scratch: str
    create_table: str  # the read-model table's DDL, so that the copy is column for column
    insert: str  # how the rebuild inserts an issuance's values
    page: int

    def run(self) -> FirstPass:
        """What a worker process does with it (:func:`run`)."""
        return run(self)


def run(job: Job) -> FirstPass:
    """Build the rows of a range of notifications into the job's scratch file."""
    found = FirstPass()
    rows = IssuedRows()
    source = sqlite3.connect(f"{Path(job.ledger).resolve().as_uri()}?mode=ro", uri=True,
                             isolation_level=None)
    target = sqlite3.connect(job.scratch, isolation_level=None)
    try:
        target.execute("PRAGMA journal_mode=OFF")  # a scratch file: nothing to recover
        target.execute("PRAGMA synchronous=OFF")
        target.execute(job.create_table)
        target.execute("BEGIN")
        cursor = source.cursor()
        position = job.after
        while page := job.events.after(cursor, position, job.page, upto=job.upto):
            target.executemany(job.insert, issuances(page, rows, found))
            position = page[-1][0]  # its notification id
        target.execute("COMMIT")
    finally:
        source.close()
        target.close()
    return found


def issuances(page: Sequence[Row], rows: IssuedRows, found: FirstPass) -> list[list[Any]]:
    """The rows of a page's issuances; its other events mark their vintages as changed
    after issuance (the second pass replays those)."""
    new = []
    for nid, vid, _, topic, state in page:
        if topic == ISSUED_TOPIC:
            new.append(rows.row(nid, vid, state, found.rolled))
        else:
            found.changed_later.add(vid)
    found.processed += len(page)
    found.later += len(page) - len(new)
    return new


@contextmanager
def scratch_files(count: int) -> Iterator[list[str]]:
    """Paths for the workers' scratch files, removed afterwards whatever happens."""
    with tempfile.TemporaryDirectory(prefix="permanence-rebuild-") as folder:
        yield [str(Path(folder) / f"part{i}.db") for i in range(count)]


def ranges(first: int, last: int, parts: int) -> list[tuple[int, int]]:
    """(after, upto] ranges of notification ids splitting [first, last] in ``parts``."""
    cuts = [first - 1 + (last - first + 1) * i // parts for i in range(parts + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(parts) if cuts[i + 1] > cuts[i]]


class WorkerFailed(Exception):
    """A rebuild worker process did not finish its share."""


class Share(Protocol):
    """A share of a rebuild's work (:class:`Job`, or a second pass's
    :class:`~projections.second_pass.ReplayJob`): picklable, writing its rows into a
    scratch file of its own, and returning (picklable) what else it found."""

    def run(self) -> Any: ...


class Worker:
    """A process that runs a rebuild's shares one after another, in a fresh interpreter
    (``python -m``, not a fork: the caller may hold connections and threads; and not
    ``multiprocessing``, which would run the caller's own main script again in each
    worker). It is started before it has work, so that its imports overlap the rebuild's
    own work, and it serves both passes; closing its input ends it."""

    def __init__(self, log: str) -> None:
        self.jobs: list[Share] = []
        self.errors = Path(log).open("w+b")  # noqa: SIM115 (closed by stop)
        source_root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(  # this interpreter, this module
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.errors,
            env={**os.environ, "PYTHONPATH": path},
        )

    def send(self, job: Share) -> None:
        """Give the worker a share (it runs them in the order given)."""
        assert self.process.stdin is not None
        self.jobs.append(job)
        try:
            self.process.stdin.write(pickle.dumps(job))
            self.process.stdin.flush()
        except BrokenPipeError:
            raise self._failed() from None

    def result(self) -> Any:
        """Wait for the worker's next share; what it found, or :class:`WorkerFailed` with
        its last words."""
        assert self.process.stdout is not None
        try:
            return pickle.load(self.process.stdout)  # from our own child process
        except (EOFError, pickle.UnpicklingError):  # it died, before or while answering
            raise self._failed() from None

    def _failed(self) -> WorkerFailed:
        code = self.process.wait()
        self.errors.seek(0)
        said = self.errors.read().decode(errors="replace").strip().splitlines()[-5:]
        return WorkerFailed(f"a rebuild worker exited with {code}: " + " | ".join(said))

    def stop(self, now: bool = False) -> None:
        """End the worker: it leaves once its input is closed, and is killed if it is
        still busy after a while, or at once (``now``: the rebuild has failed)."""
        if self.process.poll() is None:
            try:
                if now:
                    raise subprocess.TimeoutExpired(self.process.args, 0)
                assert self.process.stdin is not None
                self.process.stdin.close()
                self.process.wait(timeout=STOP_WAIT)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass
        if not self.errors.closed:
            self.errors.close()


STOP_WAIT = 5.0
"""Seconds an idle worker is given to leave once its input is closed."""


def serve() -> None:
    """A worker's loop: shares on standard input, what each found on standard output."""
    import projections.second_pass  # noqa: F401  (imported now, while the rebuild works)

    inbox, outbox = sys.stdin.buffer, sys.stdout.buffer
    gc.disable()  # as in the rebuild itself: millions of acyclic objects
    while True:
        try:
            # the pickle names the importable classes (projections.first_pass.Job, not
            # __main__'s)
            job: Share = pickle.load(inbox)
        except EOFError:
            return
        pickle.dump(job.run(), outbox)
        outbox.flush()


def database_file(dbapi_connection: Any) -> str | None:
    """The file of a SQLite connection's main database in WAL mode (which lets other
    processes read it while this one writes), else None."""
    mode = dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0]
    for _, name, path in dbapi_connection.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path) if path and str(mode).lower() == "wal" else None
    return None


if __name__ == "__main__":
    from projections.first_pass import serve as serve_shares  # the importable module's

    serve_shares()
