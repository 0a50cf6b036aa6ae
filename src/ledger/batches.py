"""The vintages one batch of commands touches: each loaded once, changed in memory, saved
together by :meth:`ledger.application.LedgerApp.run_batch`.

Why a batch: saving many aggregates in one ``save`` is several times faster than one save
each, and an import runs thousands of commands. Why a unit per command: one bad command
must never abort the batch nor leave half its events behind (a reversal spilling over two
vintages whose second part the ledger refuses), so a command of several steps works on
copies that are kept only if it succeeds.
"""

from __future__ import annotations

import copy
import gc
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from eventsourcing.persistence import RecordConflictError

from ledger.events import VintageEvent
from ledger.vintage import Vintage


class Notes(Protocol):
    """What a batch's caller keeps beside each vintage, read from the same events (an
    importer's marks: which of its records a vintage's events already hold)."""

    def see(self, event: VintageEvent) -> None: ...


N = TypeVar("N", bound=Notes)
R_co = TypeVar("R_co", covariant=True)
R = TypeVar("R")
MAX_ATTEMPTS = 16
BACKOFF_CAP_SECONDS = 0.05


def retry_on_conflict(attempt: Callable[[], R], after_conflict: Callable[[], None] | None = None) -> R:
    """Run ``attempt`` (load, act, save) again after each concurrency conflict.

    ``save`` does not retry: another writer saved the same aggregate first, so the command
    must be re-run on a fresh copy. Between tries comes a random, growing pause: two
    writers that retry at once can otherwise keep colliding, the slower one losing every
    time. ``after_conflict`` runs before the next try; the last conflict is raised.
    """
    for n in range(MAX_ATTEMPTS):
        try:
            return attempt()
        except RecordConflictError:
            if n == MAX_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, 0.001 * 2**n)))
            if after_conflict is not None:
                after_conflict()
    raise AssertionError("unreachable")


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Suspend the cyclic garbage collector while a batch builds many small objects.

    Nothing in a batch forms reference cycles worth collecting; without this, repeated
    generation-2 sweeps over the batch's live objects cost as much as the work itself.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()



@dataclass
class Loaded(Generic[N]):
    """A vintage loaded for a batch, with the caller's notes on its events."""

    vid: str
    vintage: Vintage
    notes: N

    @property
    def changed(self) -> bool:
        return bool(self.vintage.pending_events)


class BatchCommand(Protocol[N, R_co]):
    """One command of a batch: it acts on the vintages its unit hands out."""

    #: True when the command may raise more than one event (it then works on copies).
    several_steps: bool

    def __call__(self, unit: Unit[N]) -> R_co: ...


class Workspace(Generic[N]):
    """The vintages a batch has loaded (``None`` for an id the ledger lacks)."""

    def __init__(self, read: Callable[[str], Loaded[N] | None]) -> None:
        self._read = read
        self.loaded: dict[str, Loaded[N] | None] = {}

    def load(self, vid: str) -> Loaded[N] | None:
        if vid not in self.loaded:
            self.loaded[vid] = self._read(vid)
        return self.loaded[vid]

    def unit(self, isolated: bool) -> Unit[N]:
        return Unit(self, isolated)

    def changed(self) -> list[Vintage]:
        return [t.vintage for t in self.loaded.values() if t is not None and t.changed]


class Unit(Generic[N]):
    """One command's view of a batch: isolated, it works on copies, kept only on success.

    A one-step command needs no copy (the aggregate checks everything before it raises an
    event), and copying is most of the cost of a retirement.
    """

    def __init__(self, workspace: Workspace[N], isolated: bool = True) -> None:
        self.workspace = workspace
        self.isolated = isolated
        self.work: dict[str, Loaded[N] | None] = {}

    def get(self, vid: str) -> Loaded[N] | None:
        if vid not in self.work:
            base = self.workspace.load(vid)
            copied = base is not None and self.isolated
            self.work[vid] = copy.deepcopy(base) if copied else base
        return self.work[vid]

    def commit(self) -> None:
        self.workspace.loaded.update(self.work)


__all__ = ["BatchCommand", "Loaded", "Notes", "Unit", "Workspace", "no_gc_pauses",
           "retry_on_conflict"]
