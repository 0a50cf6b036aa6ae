"""Turning parsed registry records into ledger commands, so that importing is idempotent.

Why every command is keyed: an import must be safe to repeat and to resume after a crash, so
each record becomes a command whose effect can be recognised in the ledger afterwards.

- **Issuance**: the vintage id is ``vintage_id_for(program, source_key)``, so an issuance
  already in the ledger (from an earlier run, or earlier in the same file) is a duplicate.
  Issuances go in batches, one transaction each (``LedgerApp.issue_many``); a crash loses at
  most the batch in flight, and re-running the import skips what was saved.
- **Everything else** runs after all of the file's issuances (CARB comments name reversals on
  other rows) and leaves a mark on the events it records, which the next run looks for:

  ============================  ==============================================================
  record                        command, and its mark
  ============================  ==============================================================
  reversal                      ``record_reversal`` on the project's latest vintage issued on
                                or before the reversal date, spilling into earlier vintages
                                when it exceeds what one can reverse (Q + B minus earlier
                                reversals); note ``"<program> reversal <key>"``. All parts
                                are saved together.
  buffer retirement             ``compensate`` route ``buffer`` of the named reversal (by
                                key), dated the comment's date; reference ``"<program> buffer
                                <issuance key> for <reversal key>[ on <date>]"``
  surrender                     ``compensate`` route ``proponent`` of the project's
                                outstanding avoidable reversals, oldest first, dated the
                                surrendering issuance's date; reference = the issuance key
  invalidation                  ``invalidate`` on the issuance's vintage, dated its issuance
                                (the table gives no date; invalidated credits are treated as
                                never having been valid); reason ``"<program> <key>:
                                invalidated or canceled"``
  retirement                    ``retire`` on the issuance's vintage; an equal retirement
                                (same date and beneficiary) is the mark
  ============================  ==============================================================

  The quantities a source states are cumulative (CARB's columns say how many credits of an
  issuance were invalidated *so far*), so a record is a target: the importer records what the
  ledger lacks under the record's mark, nothing when it has it all (a duplicate), and rejects
  a file that now states less than the ledger already holds.

Choices the sources leave open:

- **Reversal cause.** CARB's table states only intentional or unintentional. An unintentional
  reversal is a ``wildfire`` (by far the commonest in California's forest pool) unless its
  ``Comment`` names another natural cause (pest, disease, storm, flood, drought, geological
  event). An intentional one is recorded with ``within_control=True`` (CARB defines it as the
  owner's negligence, gross negligence or wilful intent: whatever the cause, it was within the
  owner's control, so it is avoidable under every profile, overrides included) and cause
  ``mismanagement`` unless the comment names a proponent-controlled cause (harvest, land-use
  change, termination); neither ``negligence`` nor ``wilful`` is set, as the table does not say
  which it was.
- **Undated buffer retirement.** Dated the issuance row's date, or the reversal's date when
  that is later: credits cannot be retired for a reversal before it happened.

Anything the ledger refuses (a :class:`~ledger.errors.LedgerError`, e.g. a reversal larger than
what was issued, or a comment naming a reversal nobody recorded) is a rejection with its line
and reason, never silently dropped; rejected records write nothing.
"""

from __future__ import annotations

import copy
import csv
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, get_args
from uuid import UUID

from eventsourcing.persistence import DataError, RecordConflictError
from sqlalchemy import Engine, select

from ledger.application import LedgerApp, retry_on_conflict, vintage_id_for
from ledger.errors import LedgerError
from ledger.events import (
    BufferCancelled,
    BufferHeld,
    Cancelled,
    Compensated,
    Invalidated,
    Retired,
    ReversalRecorded,
    VintageEvent,
)
from ledger.vintage import Vintage
from projections.tables import vintages

from . import DERIVED_BUFFER, PARSERS, PROGRAMS, UNKNOWN_REVERSIBLE, history
from .cells import count_rows, read_rows
from .records import (
    BufferRetirementRecord,
    CreditRecord,
    InvalidationRecord,
    IssuanceRecord,
    ParseResult,
    Record,
    Rejected,
    RetirementRecord,
    ReversalRecord,
    Skipped,
    SurrenderRecord,
)

if TYPE_CHECKING:
    from permanence.runtime import Runtime

BATCH = 2_000

Kind = Literal[
    "issuance",
    "reversal",
    "buffer_retirement",
    "surrender",
    "invalidation",
    "retirement",
    "cancellation",
]
KINDS: tuple[Kind, ...] = get_args(Kind)

#: What one record may make the ledger raise besides a LedgerError (a value too large to
#: store, ...): the record is rejected with the reason, and the rest of the file goes on.
ROW_FAULTS: tuple[type[BaseException], ...] = (
    LedgerError,
    ValueError,
    TypeError,
    OverflowError,
    DataError,
)
Status = Literal["imported", "duplicate", "rejected"]

_KIND_OF: dict[type, Kind] = {
    IssuanceRecord: "issuance",
    ReversalRecord: "reversal",
    BufferRetirementRecord: "buffer_retirement",
    SurrenderRecord: "surrender",
    InvalidationRecord: "invalidation",
    RetirementRecord: "retirement",
}


def kind_of(record: Record) -> Kind:
    if isinstance(record, CreditRecord):
        return "retirement" if record.action == "retire" else "cancellation"
    return _KIND_OF[type(record)]


# --------------------------------------------------------------------------- results


@dataclass
class KindCount:
    """Records of one kind, by what became of them."""

    read: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0

    def count(self, status: Status, n: int = 1) -> None:
        if status == "imported":
            self.imported += n
        elif status == "duplicate":
            self.duplicates += n
        else:
            self.rejected += n


@dataclass(frozen=True)
class Reject:
    """One line of the rejects file: the source line, why, and the row as read."""

    line: int
    reason: str
    raw: str


@dataclass
class ImportSummary:
    """What one import did; ``as_dict`` is the CLI's JSON."""

    format: str
    file: str
    program: str
    read: int = 0
    skipped: int = 0
    unreadable: int = 0
    kinds: dict[str, KindCount] = field(default_factory=lambda: {k: KindCount() for k in KINDS})
    quantity: int = 0
    buffer: int = 0
    file_quantity: int = 0
    file_buffer: int = 0
    rejects: list[Reject] = field(default_factory=list)
    rejects_file: str | None = None
    #: Things a registry's data team should know that are not rejections (an unknown project
    #: type given the format's default, a comment that could not be read, ...).
    findings: list[str] = field(default_factory=list)
    #: Tonnes per figure: stated by the file, rejected, and held by the ledger afterwards.
    tonnes: dict[str, dict[str, int]] = field(default_factory=dict)
    non_reversible: int = 0
    verifications: int = 0

    def tally(self, figure: str, column: str, n: int) -> None:
        row = self.tonnes.setdefault(figure, {"file": 0, "rejected": 0, "repeated": 0})
        row[column] = row.get(column, 0) + n

    @property
    def unexplained(self) -> dict[str, int]:
        """Per figure, what neither the ledger nor the rejected rows account for."""
        out = {}
        for figure, row in self.tonnes.items():
            if "ledger" not in row:
                continue
            gap = row["file"] - row["rejected"] - row["repeated"] - row["ledger"]
            if gap:
                out[figure] = gap
        return out

    @property
    def failed(self) -> bool:
        """Exit 1: every row was rejected, or a difference nothing explains."""
        nothing = self.read > 0 and self.imported + self.duplicates == 0 and self.rejected > 0
        return nothing or bool(self.unexplained)

    @property
    def imported(self) -> int:
        return sum(k.imported for k in self.kinds.values())

    @property
    def duplicates(self) -> int:
        return sum(k.duplicates for k in self.kinds.values())

    @property
    def rejected(self) -> int:
        """Every line of the rejects file: unreadable rows plus records the ledger refused."""
        return self.unreadable + sum(k.rejected for k in self.kinds.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "file": self.file,
            "program": self.program,
            "read": self.read,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "skipped": self.skipped,
            "unreadable": self.unreadable,
            "kinds": {name: vars(count) for name, count in self.kinds.items() if count.read},
            "totals": {"quantity": self.quantity, "buffer": self.buffer},
            "file_totals": {"quantity": self.file_quantity, "buffer": self.file_buffer},
            "non_reversible_issued": self.non_reversible,
            "verifications_implied": self.verifications,
            "reconciliation": self.tonnes,
            "unexplained": self.unexplained,
            "findings": self.findings,
            "rejects_file": self.rejects_file,
        }


# --------------------------------------------------------------------------- preparing


@dataclass
class PreparedFile:
    """A file whose format, bytes and header were checked before anything is written."""

    fmt: str
    path: Path
    rows: int
    results: Iterator[ParseResult]


def prepare(fmt: str, path: Path) -> PreparedFile:
    """Check the whole file first, so that a wrong or unreadable file writes nothing.

    ``ValueError`` for an unknown format, ``FileNotFoundError``, or
    :class:`~permanence.imports.ImportFormatError` for undecodable bytes anywhere or missing
    columns.
    """
    if fmt not in PARSERS:
        known = ", ".join(sorted(PARSERS))
        raise ValueError(f"unknown import format {fmt!r}; known formats: {known}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows = count_rows(path)
    results = PARSERS[fmt](path)
    first = next(results, None)  # reads the header: missing columns raise here
    return PreparedFile(fmt, path, rows, chain([] if first is None else [first], results))


def default_rejects_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".rejects.csv")


# --------------------------------------------------------------------------- marks


def reversal_note(program: str, key: str) -> str:
    return f"{program} reversal {key}"


#: How a pool cancellation's stand-in (a buffer hold) names itself, until the ledger has its own
#: pool-cancellation event.


def buffer_reference(program: str, issuance: str, reversal: str, on: date | None) -> str:
    text = f"{program} buffer {issuance} for {reversal}"
    return text if on is None else f"{text} on {on.isoformat()}"


def invalidation_reason(program: str, key: str) -> str:
    return f"{program} {key}: invalidated or canceled"


@dataclass
class Marks:
    """What earlier commands left on one vintage, keyed the way the importer keys them."""

    reversals: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    compensations: Counter[tuple[str, str]] = field(default_factory=Counter)
    invalidations: Counter[str] = field(default_factory=Counter)
    retirements: Counter[tuple[date, str | None]] = field(default_factory=Counter)
    holds: Counter[str] = field(default_factory=Counter)
    pool_cancellations: Counter[str] = field(default_factory=Counter)
    cancellations: Counter[str] = field(default_factory=Counter)

    def see(self, event: VintageEvent) -> None:
        if isinstance(event, ReversalRecorded) and event.note:
            self.reversals.setdefault(event.note, []).append((event.reversal_id, event.quantity))
        elif isinstance(event, Compensated) and event.reference:
            self.compensations[(event.route, event.reference)] += event.quantity
        elif isinstance(event, Invalidated) and event.reason:
            self.invalidations[event.reason] += event.quantity
        elif isinstance(event, Retired):
            self.retirements[(event.on, event.beneficiary)] += event.quantity
        elif isinstance(event, BufferCancelled):
            self.pool_cancellations[event.reason] += event.quantity
        elif isinstance(event, BufferHeld) and event.reason:
            self.holds[event.reason] += event.quantity
        elif isinstance(event, Cancelled) and event.reason:
            self.cancellations[event.reason] += event.quantity


@dataclass
class Tracked:
    """A vintage loaded for commands, with its marks kept in step with what is triggered."""

    vid: str
    vintage: Vintage
    marks: Marks

    @property
    def changed(self) -> bool:
        return bool(self.vintage.pending_events)


# --------------------------------------------------------------------------- the unit of work


class Batch:
    """The vintages one transaction touches: loaded once, changed in memory, saved together."""

    def __init__(self, app: LedgerApp) -> None:
        self.app = app
        self.loaded: dict[str, Tracked | None] = {}

    def load(self, vid: str) -> Tracked | None:
        if vid not in self.loaded:
            self.loaded[vid] = self._read(vid)
        return self.loaded[vid]

    def _read(self, vid: str) -> Tracked | None:
        """Rebuild the vintage and its marks from one read of its stream."""
        vintage: Any = None
        marks = Marks()
        for event in self.app.events_of(UUID(vid)):
            vintage = event.mutate(vintage)
            marks.see(event)
        return None if vintage is None else Tracked(vid, vintage, marks)

    def save(self) -> None:
        changed = [t.vintage for t in self.loaded.values() if t is not None and t.changed]
        if changed:
            self.app.save(*changed)


class Unit:
    """One command's view of a batch: isolated, it works on copies, kept only if it succeeds.

    A command of several steps (a reversal spilling over two vintages) must not leave half
    its events behind when the ledger refuses a later step. A one-step command needs no copy
    (the aggregate checks everything before it raises an event), and copying is most of the
    cost of a retirement.
    """

    def __init__(self, batch: Batch, isolated: bool = True) -> None:
        self.batch = batch
        self.isolated = isolated
        self.work: dict[str, Tracked | None] = {}

    def get(self, vid: str) -> Tracked | None:
        if vid not in self.work:
            base = self.batch.load(vid)
            copied = base is not None and self.isolated
            self.work[vid] = copy.deepcopy(base) if copied else base
        return self.work[vid]

    def commit(self) -> None:
        self.batch.loaded.update(self.work)


# --------------------------------------------------------------------------- causes

_UNAVOIDABLE_WORDS: tuple[tuple[str, str], ...] = (
    (r"(wild|forest\s+)?fires?|burn(ed|t)?", "wildfire"),
    (r"(bark\s+)?beetles?|insects?|pests?|infestation", "pest"),
    (r"disease|pathogens?|sudden\s+oak\s+death", "disease"),
    (r"storms?|wind(throw|storm)?s?|hurricanes?|tornado(es)?|ice\s+storm", "storm"),
    (r"flood(s|ing)?", "flood"),
    (r"drought", "drought"),
    (r"earthquakes?|landslides?|volcan\w*", "geological"),
)
_AVOIDABLE_WORDS: tuple[tuple[str, str], ...] = (
    (r"harvest(s|ed|ing)?|logging|timber\s+sale", "harvest"),
    (r"development|conversion|land[-\s]use\s+change", "land-use-change"),
    (r"terminat(ed|ion)", "termination"),
)


def reversal_cause(comment: str | None, intentional: bool) -> str:
    """The cause a CARB reversal is recorded with (see the module docstring for why)."""
    words = _UNAVOIDABLE_WORDS + (_AVOIDABLE_WORDS if intentional else ())
    found: list[tuple[int, str]] = []
    for pattern, cause in words:
        match = re.search(rf"\b(?:{pattern})\b", comment or "", re.IGNORECASE)
        if match is not None:
            found.append((match.start(), cause))
    if found:
        return min(found)[1]
    return "mismanagement" if intentional else "wildfire"


# --------------------------------------------------------------------------- commands


class Refused(Exception):
    """The importer itself refuses a record (no vintage to attach it to, ...)."""


@dataclass
class Outcome:
    status: Status
    reason: str | None = None


class Command:
    """A group of records with one mark, applied as one unit."""

    kind: Kind
    records: Sequence[Record]
    #: True when the command may raise more than one event (see :class:`Unit`).
    several_steps: ClassVar[bool] = True

    def apply(self, loader: Loader, unit: Unit) -> Status:
        raise NotImplementedError

    @property
    def line(self) -> int:
        return self.records[0].line

    @property
    def quantity(self) -> int:
        return sum(r.quantity for r in self.records)


@dataclass
class ReversalCommand(Command):
    records: Sequence[ReversalRecord]
    kind: Kind = "reversal"

    def apply(self, loader: Loader, unit: Unit) -> Status:
        first = self.records[0]
        if any(
            (r.on, r.quantity, r.intentional) != (first.on, first.quantity, first.intentional)
            for r in self.records
        ):
            raise Refused(f"reversal {first.source_key} is stated more than once, differently")
        note = reversal_note(first.program, first.source_key)
        vintages = loader.project_vintages(unit, first.program, first.project)
        recorded = sum(q for t in vintages for _, q in t.marks.reversals.get(note, []))
        if recorded:
            if recorded != first.quantity:
                raise Refused(
                    f"reversal {first.source_key} is already recorded with {recorded} tonnes; "
                    f"the file now states {first.quantity}"
                )
            return "duplicate"
        candidates = sorted(
            (
                t
                for t in vintages
                if t.vintage.issued_on <= first.on < t.vintage.period_end
                and not t.vintage.period_closed
            ),
            key=lambda t: (t.vintage.issued_on, t.vintage.source_key or "", t.vid),
            reverse=True,
        )
        if not candidates:
            raise Refused(
                f"no vintage of project {first.project} was issued on or before {first.on}"
            )
        plan: list[tuple[Tracked, int]] = []
        remaining = first.quantity
        for tracked in candidates:
            v = tracked.vintage
            room = v.exposure_at(first.on) - sum(
                r.quantity for r in v.reversals.values() if r.cured_on is None
            )
            take = min(room, remaining)
            if take > 0:
                plan.append((tracked, take))
                remaining -= take
            if remaining == 0:
                break
        if remaining:
            able = first.quantity - remaining
            raise Refused(
                f"reversal {first.source_key} of {first.quantity} tonnes exceeds what project "
                f"{first.project}'s vintages issued on or before {first.on} can still reverse "
                f"({able})"
            )
        cause = reversal_cause(first.comment, first.intentional)
        for tracked, take in plan:
            rid, _ = tracked.vintage.record_reversal(
                first.on, take, cause, within_control=first.intentional, note=note
            )
            tracked.marks.reversals.setdefault(note, []).append((rid, take))
        return "imported"


@dataclass
class BufferRetirementCommand(Command):
    """Buffer credits of one issuance retired for one reversal (or for none the comment names).

    Where the named reversal is in the ledger, the credits compensate it (route ``buffer``), up
    to what it still owes; what no recorded reversal takes (a reversal of a project outside
    the ledger, an unread comment, more than is due) is a **pool cancellation** of the issuance's
    buffer credits carrying the reversal's key, so the pool's balance always reconciles with
    the table (a ``BufferCancelled`` event, its reason the reference).
    """

    records: Sequence[BufferRetirementRecord]
    kind: Kind = "buffer_retirement"

    def apply(self, loader: Loader, unit: Unit) -> Status:
        first = self.records[0]
        key = first.for_reversal
        reference = buffer_reference(first.program, first.source_key, key or "unnamed", first.on)
        source = _issuance(unit, first.program, first.source_key)
        parts = [] if key is None else loader.reversal_parts(unit, first.program, key)
        on = first.on or max(
            [source.vintage.issued_on] + [t.vintage.reversals[rid].on for t, rid in parts]
        )
        done = sum(t.marks.compensations[("buffer", reference)] for t in _distinct(parts))
        done += source.marks.pool_cancellations[reference] + source.marks.holds[reference]
        remaining = _still_to_do(
            self.quantity, done, f"buffer retirement of {first.source_key} for {key or 'unnamed'}"
        )
        if remaining == 0:
            return "duplicate"
        due = sum(
            t.vintage.reversals[rid].outstanding
            for t, rid in parts
            if on >= t.vintage.reversals[rid].on
        )
        taken = min(remaining, due)
        if taken:
            _compensate_in_order(parts, "buffer", taken, on, reference)
        if remaining > taken:
            held = remaining - taken
            source.vintage.cancel_buffer(held, on, reference)
            source.marks.pool_cancellations[reference] += held
            why = first.unread or (
                f"reversal {key} is not recorded in the ledger"
                if not parts
                else f"only {due} of reversal {key} was still due"
            )
            loader.findings.append(
                f"line {first.line}: {held} buffer credits of {first.source_key} recorded as a "
                f"pool cancellation for {key or 'no named reversal'} on {on}: {why}"
            )
        return "imported"


@dataclass
class SurrenderCommand(Command):
    records: Sequence[SurrenderRecord]
    kind: Kind = "surrender"

    def apply(self, loader: Loader, unit: Unit) -> Status:
        first = self.records[0]
        source = _issuance(unit, first.program, first.source_key)
        on = source.vintage.issued_on
        vintages = loader.project_vintages(unit, first.program, first.project)
        reference = first.source_key
        remaining = _still_to_do(
            self.quantity,
            sum(t.marks.compensations[("proponent", reference)] for t in vintages),
            f"surrender of {first.source_key}",
        )
        if remaining == 0:
            return "duplicate"
        owed = sorted(
            (
                (r.on, t.vintage.issued_on, t.vid, r.reversal_id, t)
                for t in vintages
                for r in t.vintage.reversals.values()
                if r.classification == "avoidable"
                and r.outstanding > 0
                and r.on <= on < t.vintage.period_end
            ),
            key=lambda item: item[:4],
        )
        due = sum(item[4].vintage.reversals[item[3]].outstanding for item in owed)
        if remaining > due:
            raise Refused(
                f"{remaining} credits of {first.source_key} surrendered, but project "
                f"{first.project} owes only {due} for avoidable reversals on {on}"
            )
        parts = [(tracked, rid) for _, _, _, rid, tracked in owed]
        _compensate_in_order(parts, "proponent", remaining, on, reference)
        return "imported"


def _compensate_in_order(
    parts: Iterable[tuple[Any, str]], route: str, quantity: int, on: date, reference: str
) -> None:
    """Compensate ``quantity`` across (vintage, reversal) parts in order, each up to what
    it still owes, marking what each took under ``(route, reference)``."""
    remaining = quantity
    for tracked, rid in parts:
        take = min(remaining, tracked.vintage.reversals[rid].outstanding)
        if take:
            tracked.vintage.compensate(rid, route, take, on, reference)
            tracked.marks.compensations[(route, reference)] += take
            remaining -= take
        if remaining == 0:
            break


def _issuance(unit: Unit, program: str, source_key: str) -> Any:
    """The vintage an issuance key names, or a refusal when the ledger lacks it."""
    tracked = unit.get(vintage_id_for(program, source_key))
    if tracked is None:
        raise Refused(f"issuance {source_key} is not in the ledger")
    return tracked


@dataclass
class InvalidationCommand(Command):
    records: Sequence[InvalidationRecord]
    kind: Kind = "invalidation"
    several_steps: ClassVar[bool] = False

    def apply(self, loader: Loader, unit: Unit) -> Status:
        first = self.records[0]
        tracked = _issuance(unit, first.program, first.source_key)
        reason = invalidation_reason(first.program, first.source_key)
        remaining = _still_to_do(
            self.quantity,
            tracked.marks.invalidations[reason],
            f"invalidation of {first.source_key}",
        )
        if remaining == 0:
            return "duplicate"
        tracked.vintage.invalidate(remaining, tracked.vintage.issued_on, reason)
        tracked.marks.invalidations[reason] += remaining
        return "imported"


@dataclass
class RetirementCommand(Command):
    records: Sequence[RetirementRecord]
    kind: Kind = "retirement"
    several_steps: ClassVar[bool] = False

    def apply(self, loader: Loader, unit: Unit) -> Status:
        first = self.records[0]
        tracked = _issuance(unit, first.program, first.source_key)
        mark = (first.on, first.beneficiary)
        remaining = _still_to_do(
            self.quantity, tracked.marks.retirements[mark], f"retirement of {first.source_key}"
        )
        if remaining == 0:
            return "duplicate"
        tracked.vintage.retire(remaining, first.on, first.beneficiary)
        tracked.marks.retirements[mark] += remaining
        return "imported"


@dataclass
class CreditCommand(Command):
    """Retirements or cancellations of one project's vintage on one day (ACR, CAR exports).

    The vintage is the issuance the record names (ACR) when the ledger has it, else the
    project's vintages of the
    record's vintage year issued on or before the date, oldest first, each up to its
    outstanding credits. The mark is the retirement's (date, beneficiary) or the
    cancellation's reason, which holds the date and the reason as stated.
    """

    records: Sequence[CreditRecord]
    kind: Kind = "retirement"

    def apply(self, loader: Loader, unit: Unit) -> Status:
        first = self.records[0]
        self.kind = kind_of(first)
        named = None
        if first.source_key is not None:
            named = unit.get(vintage_id_for(first.program, first.source_key))
        if named is not None:
            targets = [named]
        else:
            targets = sorted(
                (
                    t
                    for t in loader.project_vintages(unit, first.program, first.project)
                    if t.vintage.vintage_year == first.vintage_year
                    and t.vintage.issued_on <= first.on
                ),
                key=lambda t: (t.vintage.issued_on, t.vintage.source_key or "", t.vid),
            )
            if not targets:
                raise Refused(
                    f"no vintage {first.vintage_year} of project {first.project} issued on or "
                    f"before {first.on} is in the ledger"
                )
        mark = credit_mark(first)
        done = sum(_credit_done(t, first, mark) for t in targets)
        what = f"{'retirement' if first.action == 'retire' else 'cancellation'} of {first.project}"
        remaining = _still_to_do(self.quantity, done, what)
        if remaining == 0:
            return "duplicate"
        room = sum(t.vintage.outstanding_credits for t in targets)
        if remaining > room:
            raise Refused(
                f"{what} vintage {first.vintage_year}: {remaining} credits on {first.on}, but "
                f"only {room} are outstanding"
            )
        for tracked in targets:
            take = min(remaining, tracked.vintage.outstanding_credits)
            if take <= 0:
                continue
            if first.action == "retire":
                tracked.vintage.retire(take, first.on, first.reason)
                tracked.marks.retirements[(first.on, first.reason)] += take
            else:
                tracked.vintage.cancel(take, first.on, mark)
                tracked.marks.cancellations[mark] += take
            remaining -= take
            if remaining == 0:
                break
        return "imported"


def credit_mark(record: CreditRecord) -> str:
    """A cancellation's reason as recorded: the program, the date and the stated reason."""
    return f"{record.program} cancellation {record.on.isoformat()}: {record.reason or 'unstated'}"


def _credit_done(tracked: Tracked, record: CreditRecord, mark: str) -> int:
    if record.action == "retire":
        return tracked.marks.retirements[(record.on, record.reason)]
    return tracked.marks.cancellations[mark]


def _still_to_do(target: int, done: int, what: str) -> int:
    """What the ledger lacks of a cumulative figure; less in the file than recorded is refused."""
    if done > target:
        raise Refused(f"{what}: the ledger already holds {done} tonnes, the file states {target}")
    return target - done


def _distinct(parts: Iterable[tuple[Tracked, str]]) -> list[Tracked]:
    seen: dict[str, Tracked] = {}
    for tracked, _ in parts:
        seen.setdefault(tracked.vid, tracked)
    return list(seen.values())


def commands_for(records: Sequence[Record]) -> list[Command]:
    """Group the non-issuance records by mark, in the order they must run.

    Reversals first (compensations name them), then what compensates them, then what
    reduces or retires credits.
    """
    groups: dict[tuple[Any, ...], list[Record]] = defaultdict(list)
    for r in records:
        if isinstance(r, ReversalRecord):
            groups[("reversal", r.program, r.source_key)].append(r)
        elif isinstance(r, BufferRetirementRecord):
            groups[("buffer_retirement", r.program, r.source_key, r.for_reversal, r.on)].append(r)
        elif isinstance(r, SurrenderRecord):
            groups[("surrender", r.program, r.source_key)].append(r)
        elif isinstance(r, InvalidationRecord):
            groups[("invalidation", r.program, r.source_key)].append(r)
        elif isinstance(r, RetirementRecord):
            groups[("retirement", r.program, r.source_key, r.on, r.beneficiary)].append(r)
        elif isinstance(r, CreditRecord):
            where = r.source_key or (r.project, r.vintage_year)
            groups[("credit", r.action, r.program, where, r.on, r.reason)].append(r)
    makers: dict[str, Callable[[Any], Command]] = {
        "reversal": ReversalCommand,
        "buffer_retirement": BufferRetirementCommand,
        "surrender": SurrenderCommand,
        "invalidation": InvalidationCommand,
        "retirement": RetirementCommand,
        "credit": CreditCommand,
    }
    order = {kind: n for n, kind in enumerate(KINDS)}
    commands = [makers[key[0]](group) for key, group in groups.items()]
    for command in commands:
        command.kind = kind_of(command.records[0])
    commands.sort(key=lambda c: (order[c.kind], c.line))
    return commands


# --------------------------------------------------------------------------- the loader


class Loader:
    """Imports one prepared file into a ledger (see the module docstring)."""

    def __init__(
        self,
        app: LedgerApp,
        batch: int = BATCH,
        progress: Callable[[int], None] | None = None,
        refresh: Callable[[], object] | None = None,
        known: Callable[[Sequence[str]], set[str]] | None = None,
        figures: Callable[[Sequence[str]], dict[str, tuple[int, int]]] | None = None,
    ) -> None:
        """``refresh`` brings the read side up to date at the end; ``known`` says which
        vintage ids the read model already holds (a fast, possibly lagging, lookup);
        ``figures`` their (quantity, buffer), so a repeated key with other figures is a
        conflict, not a duplicate."""
        if batch < 1:
            raise ValueError(f"batch: must be at least 1, got {batch}")
        self.app = app
        self.batch = batch
        self.progress = progress or (lambda rows: None)
        self.refresh = refresh
        self.known = known
        self._file_vintages: dict[tuple[str, str], list[str]] = defaultdict(list)
        self._evidence: dict[tuple[str, str], list[history.Evidence]] = defaultdict(list)
        self._reversible_projects: set[tuple[str, str]] = set()
        self.findings: list[str] = []
        self._unknown_types: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        #: The file's vintages the ledger holds with the file's figures (issued or already).
        self.accepted: set[str] = set()
        self.figures = figures
        self.fmt = ""
        self._project_ids: dict[tuple[str, str], list[str]] = {}
        self._reversal_projects: dict[tuple[str, str], str] = {}

    def run(self, prepared: PreparedFile) -> ImportSummary:
        summary = ImportSummary(prepared.fmt, str(prepared.path), PROGRAMS[prepared.fmt])
        self.fmt = prepared.fmt
        later: list[Record] = []
        pending: list[IssuanceRecord] = []
        seen: dict[str, IssuanceRecord] = {}
        last_line = 0
        unreported = 0
        for result in prepared.results:
            if result.line != last_line:
                last_line = result.line
                summary.read += 1
                unreported += 1
            if isinstance(result, Rejected):
                summary.unreadable += 1
                summary.rejects.append(Reject(result.line, result.reason, result.raw))
            elif isinstance(result, Skipped):
                summary.skipped += 1
            elif isinstance(result, IssuanceRecord):
                self._read_issuance(result, seen, pending, summary)
                if len(pending) >= self.batch:
                    self._issue(pending, summary)
                    pending = []
                    self.progress(unreported)
                    unreported = 0
            else:
                kind = kind_of(result)
                summary.kinds[kind].read += 1
                summary.tally(kind, "file", result.quantity)
                if isinstance(result, ReversalRecord):
                    self._reversal_projects[(result.program, result.source_key)] = result.project
                later.append(result)
        if pending:
            self._issue(pending, summary)
        self.progress(unreported)
        self._record_history(summary)
        if later:
            self._run_commands(commands_for(later), summary)
        if self.refresh is not None:
            self.refresh()  # a resumed import may have saved nothing, yet find the read side behind
        _fill_raw(prepared, summary.rejects)
        summary.rejects.sort(key=lambda r: r.line)
        summary.findings += self._unknown_type_findings() + self.findings
        return summary

    def _read_issuance(
        self,
        record: IssuanceRecord,
        seen: dict[str, IssuanceRecord],
        pending: list[IssuanceRecord],
        summary: ImportSummary,
    ) -> None:
        """Count an issuance row; a repeated key is a duplicate only with the same figures."""
        counts = summary.kinds["issuance"]
        counts.read += 1
        summary.file_quantity += record.quantity
        summary.file_buffer += record.buffer
        summary.tally("issued", "file", record.quantity)
        summary.tally("buffer", "file", record.buffer)
        vid = vintage_id_for(record.program, record.source_key)
        prior = seen.get(vid)
        if prior is None:
            seen[vid] = record
            pending.append(record)
            return
        if (prior.quantity, prior.buffer) == (record.quantity, record.buffer):
            counts.duplicates += 1
            summary.tally("issued", "repeated", record.quantity)
            summary.tally("buffer", "repeated", record.buffer)
            return
        _reject_conflict(summary, counts, record, (
            f"conflicts with line {prior.line}, same key with other figures: quantity "
            f"{record.quantity} and buffer {record.buffer} here, quantity {prior.quantity} and "
            f"buffer {prior.buffer} there"))

    # ------------------------------------------------------------------ issuances

    def _issue(self, records: list[IssuanceRecord], summary: ImportSummary) -> None:
        """Issue the batch's new vintages in one transaction; count the rest as duplicates.

        With a ``known`` lookup (the read model) the batch is inserted optimistically: the
        event store's unique (id, version) is the final word, so a vintage the read model
        had not caught up with makes the insert fail as a whole, and only then is each id
        asked of the ledger (``LedgerApp.existing``) and the rest issued.
        """
        specs = {vintage_id_for(r.program, r.source_key): self._spec(r, summary) for r in records}
        ids = list(specs)
        present = self.known(ids) if self.known is not None else self.app.existing(ids)
        fresh = [(r, vid) for r, vid in zip(records, ids) if vid not in present]

        def drop_existing() -> None:
            nonlocal fresh
            there = self.app.existing([vid for _, vid in fresh])
            present.update(there)
            fresh = [(r, vid) for r, vid in fresh if vid not in there]

        issued, found = retry_on_conflict(
            lambda: self._issue_fresh(fresh, specs, summary), drop_existing
        )
        present |= found
        self._check_present(records, ids, present, specs, summary)
        for r, vid in zip(records, ids):
            if vid in present or vid in issued:
                self.accepted.add(vid)
                self._file_vintages[(r.program, r.project)].append(vid)
                self._evidence[(r.program, r.project)].extend(_evidence(r))
                if specs[vid]["reversible"]:
                    self._reversible_projects.add((r.program, r.project))

    def _check_present(
        self,
        records: list[IssuanceRecord],
        ids: list[str],
        present: set[str],
        specs: dict[str, dict[str, Any]],
        summary: ImportSummary,
    ) -> None:
        """An issuance already in the ledger is a duplicate only if its figures agree."""
        counts = summary.kinds["issuance"]
        held = self.figures([vid for vid in ids if vid in present]) if self.figures else {}
        for r, vid in zip(records, ids):
            if vid not in present:
                continue
            stated = (specs[vid]["quantity"], specs[vid]["buffer"])
            there = held.get(vid, stated)
            if there == stated:
                counts.duplicates += 1
                continue
            _reject_conflict(summary, counts, r, (
                f"conflicts with the ledger, same key with other figures: quantity "
                f"{stated[0]} and buffer {stated[1]} in the file, quantity {there[0]} and "
                f"buffer {there[1]} in the ledger"))
            present.discard(vid)

    def _issue_fresh(
        self,
        fresh: list[tuple[IssuanceRecord, str]],
        specs: dict[str, dict[str, Any]],
        summary: ImportSummary,
    ) -> tuple[set[str], set[str]]:
        """Issue in one transaction; if the ledger refuses one spec, issue them one by one,
        rejecting only the specs it refuses (whatever it raises), so one bad row never stops
        the rows after it.

        Returns the ids issued, and the ids found to exist meanwhile (one by one only).
        """
        counts = summary.kinds["issuance"]
        found: set[str] = set()
        try:
            self.app.issue_many([specs[vid] for _, vid in fresh])
            done = fresh
        except RecordConflictError:
            raise
        except ROW_FAULTS:
            done = []
            for r, vid in fresh:
                try:
                    self.app.issue_many([specs[vid]])
                    done.append((r, vid))
                except RecordConflictError:
                    found.add(vid)
                except ROW_FAULTS as exc:
                    counts.rejected += 1
                    summary.tally("issued", "rejected", r.quantity)
                    summary.tally("buffer", "rejected", r.buffer)
                    summary.rejects.append(
                        Reject(r.line, f"line {r.line}: issuance {r.source_key}: {_why(exc)}", "")
                    )
        counts.imported += len(done)
        summary.quantity += sum(specs[vid]["quantity"] for _, vid in done)
        summary.buffer += sum(specs[vid]["buffer"] for _, vid in done)
        summary.non_reversible += sum(
            specs[vid]["quantity"] for _, vid in done if not specs[vid]["reversible"]
        )
        return {vid for _, vid in done}, found

    def _spec(self, record: IssuanceRecord, summary: ImportSummary) -> dict[str, Any]:
        """The issuance command: with whether the credits can reverse, and any buffer the
        program withholds though the file does not state it."""
        vid = vintage_id_for(record.program, record.source_key)
        reversible = self._reversible(record, summary)
        spec = _spec(record, vid)
        spec["reversible"] = reversible
        spec["buffer"] = record.buffer + self._derived_buffer(record, reversible, summary)
        # an export records what the registry did under its rules then (Verra's buffer is a
        # separate account, not stated per issuance): the minimum applies to new issuance
        spec["enforce_minimum_buffer"] = False
        return spec

    def _reversible(self, record: IssuanceRecord, summary: ImportSummary) -> bool:
        """The source's own statement, else the profile's scope, else the format's default
        (and a finding: an unknown type must be looked at)."""
        if record.reversible_stated is not None:
            return record.reversible_stated
        profile = self.app.catalog.get(record.program)
        answer = profile.reversible(record.project_type, record.methodology)
        if answer is not None:
            return answer
        default = UNKNOWN_REVERSIBLE.get(self.fmt, True)
        key = (record.program, record.project_type, record.methodology, default)
        self._unknown_types[key].append(record.line)
        return default

    def _unknown_type_findings(self) -> list[str]:
        """One finding per unknown project type, naming its rows (a file of 6,000 rows of
        one type gives one finding, not 6,000)."""
        out = []
        for (program, project_type, methodology, default), lines in self._unknown_types.items():
            where = ", ".join(str(n) for n in lines[:5]) + (
                f" and {len(lines) - 5:,} more" if len(lines) > 5 else "")
            out.append(
                f"{len(lines):,} row(s) (line {where}): project type {project_type!r} "
                f"(methodology {methodology!r}) is not in profile {program}'s reversal scope; "
                f"recorded as {'reversible' if default else 'non-reversible'}, the {self.fmt} "
                "format's default"
            )
        return out

    def _derived_buffer(
        self, record: IssuanceRecord, reversible: bool, summary: ImportSummary
    ) -> int:
        """Gold Standard withholds a flat share of sequestration credits that its issuance
        export does not state: derive it from the profile (quantity is the 1 - rate part)."""
        if record.buffer or not reversible or self.fmt not in DERIVED_BUFFER:
            return 0
        profile = self.app.catalog.get(record.program)
        if profile.reversible(record.project_type, record.methodology) is not True:
            return 0  # only types the profile names as land use and forest, never a default
        rate = profile.buffer_rate.value
        if profile.buffer_method.value != "flat" or not rate:
            return 0
        share = Fraction(str(rate))
        derived = int(Fraction(record.quantity) * share / (1 - share) + Fraction(1, 2))
        if derived:
            summary.findings.append(
                f"line {record.line}: buffer of {derived} derived from profile "
                f"{record.program}'s flat rate {rate} (the file states none)"
            )
            summary.tally("buffer", "file", derived)
        return derived

    # ------------------------------------------------------------------ verification history

    def _record_history(self, summary: ImportSummary) -> None:
        """Record the verifications the file's issuances imply (see :mod:`.history`)."""
        today = self.app.today()
        todo: list[history.Verification] = []
        for (program, project), evidence in self._evidence.items():
            if (program, project) not in self._reversible_projects:
                continue  # nothing of it can lapse (see the module docstring of .history)
            ids = list(dict.fromkeys(self._file_vintages.get((program, project), [])))
            if self.app.index is not None:
                ids += [i for i in self.app.index.vintage_ids_of_project(project) if i not in ids]
            known = [k for k in (self._known(vid, program) for vid in ids) if k is not None]
            todo += history.plan(program, known, evidence, today)
        grouped = history.by_vintage(todo)
        vids = list(grouped)
        for start in range(0, len(vids), self.batch):
            chunk = vids[start : start + self.batch]
            try:
                self.app.verify_many(
                    [(vid, item.on, item.verifier) for vid in chunk for item in grouped[vid]])
                summary.verifications += sum(len(grouped[vid]) for vid in chunk)
            except ROW_FAULTS as exc:
                summary.findings.append(
                    f"verifications implied by the file not recorded: {_why(exc)}"
                )

    def _known(self, vid: str, program: str) -> history.Known | None:
        try:
            v = self.app.vintage(vid)
        except LedgerError:
            return None
        if v.program != program or v.period_closed:
            return None
        return history.Known(
            vid, v.issued_on, v.period_end, v.reversible, frozenset(v.verifications),
            v.rules.verification_interval_years, v.rules.grace_days,
        )

    # ------------------------------------------------------------------ other commands

    def _run_commands(self, commands: list[Command], summary: ImportSummary) -> None:
        for start in range(0, len(commands), self.batch):
            chunk = commands[start : start + self.batch]
            outcomes = retry_on_conflict(partial(self._apply_chunk, chunk))
            for command, outcome in zip(chunk, outcomes):
                counts = summary.kinds[command.kind]
                if outcome.status == "rejected":
                    counts.rejected += len(command.records)
                    summary.tally(command.kind, "rejected", command.quantity)
                    for record in command.records:
                        summary.rejects.append(
                            Reject(record.line, f"line {record.line}: {outcome.reason}", "")
                        )
                elif outcome.status == "imported" and command.kind == "reversal":
                    counts.imported += 1
                    counts.duplicates += len(command.records) - 1
                    summary.tally(
                        command.kind, "repeated", command.quantity - command.records[0].quantity
                    )
                    summary.tally(command.kind, "ledger", command.records[0].quantity)
                else:
                    counts.count(outcome.status, len(command.records))
                    if command.kind == "reversal":
                        summary.tally(
                            command.kind, "repeated", command.quantity - command.records[0].quantity
                        )
                        summary.tally(command.kind, "ledger", command.records[0].quantity)
                    else:
                        summary.tally(command.kind, "ledger", command.quantity)

    def _apply_chunk(self, chunk: list[Command]) -> list[Outcome]:
        """Apply a chunk of commands on fresh copies and save them in one transaction."""
        batch = Batch(self.app)
        outcomes = [self._apply(command, batch) for command in chunk]
        batch.save()
        return outcomes

    def _apply(self, command: Command, batch: Batch) -> Outcome:
        unit = Unit(batch, isolated=command.several_steps)
        try:
            status = command.apply(self, unit)
        except Refused as exc:
            return Outcome("rejected", f"{command.kind.replace('_', ' ')}: {exc}")
        except ROW_FAULTS as exc:
            return Outcome("rejected", f"{command.kind.replace('_', ' ')}: {_why(exc)}")
        unit.commit()
        return Outcome(status)

    def project_vintages(self, unit: Unit, program: str, project: str) -> list[Tracked]:
        """The project's vintages of this program: this file's, and any the ledger indexes."""
        key = (program, project)
        if key not in self._project_ids:
            ids = list(dict.fromkeys(self._file_vintages.get(key, [])))
            if self.app.index is not None:
                ids += [i for i in self.app.index.vintage_ids_of_project(project) if i not in ids]
            self._project_ids[key] = ids
        found = (unit.get(vid) for vid in self._project_ids[key])
        return [t for t in found if t is not None and t.vintage.program == program]

    def reversal_parts(self, unit: Unit, program: str, key: str) -> list[tuple[Tracked, str]]:
        """The (vintage, reversal id) parts of the reversal keyed ``key``, latest vintage first.

        The project is the reversal row's; for a key no row of this file states (a reversal
        imported earlier), the project id the key starts with.
        """
        project = self._reversal_projects.get((program, key), key.split("-")[0])
        note = reversal_note(program, key)
        vintages = sorted(
            self.project_vintages(unit, program, project),
            key=lambda t: (t.vintage.issued_on, t.vintage.source_key or "", t.vid),
            reverse=True,
        )
        return [(t, rid) for t in vintages for rid, _ in t.marks.reversals.get(note, [])]


def _why(exc: BaseException) -> str:
    """One line for a rejection: the ledger's own message, or the fault's type and text."""
    if isinstance(exc, LedgerError):
        return str(exc)
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"refused by the ledger: {type(exc).__name__}: {text}"


def _evidence(record: IssuanceRecord) -> list[history.Evidence]:
    items = [history.Evidence(record.issued_on, record.source_key, record.verifier, False)]
    if record.verified_on is not None:
        items.append(history.Evidence(record.verified_on, record.source_key, record.verifier, True))
    return items


def _serial(prefix: str | None, number: str | None) -> str | None:
    """A serial as stored: its numbering space kept (``GS1-1-UG-GS11236-16-2024-30307-1``),
    so that ``check`` compares serials only within one space."""
    if number is None or not prefix:
        return number
    return f"{prefix}-{number}"


def _reject_conflict(
    summary: ImportSummary, counts: Any, record: IssuanceRecord, why: str
) -> None:
    """An issuance whose key another row or the ledger holds with other figures."""
    counts.rejected += 1
    summary.tally("issued", "rejected", record.quantity)
    summary.tally("buffer", "rejected", record.buffer)
    summary.rejects.append(
        Reject(record.line, f"line {record.line}: issuance {record.source_key}: {why}", ""))


def _spec(record: IssuanceRecord, vid: str) -> dict[str, Any]:
    return {
        "vintage_id": vid,
        "program": record.program,
        "project": record.project,
        "quantity": record.quantity,
        "buffer": record.buffer,
        "on": record.issued_on,
        "vintage_year": record.vintage_year,
        "vintage_start": record.vintage_start,
        "vintage_end": record.vintage_end,
        "serial_first": _serial(record.serial_prefix, record.serial_first),
        "serial_last": _serial(record.serial_prefix, record.serial_last),
        "crediting_start": record.crediting_start,
        "source_key": record.source_key,
        "corresponding_adjustment": record.corresponding_adjustment,
        "authorization": record.authorization,
        "project_type": record.project_type,
    }


def _fill_raw(prepared: PreparedFile, rejects: list[Reject]) -> None:
    """Give the ledger's refusals their source row: read again, only if there are any."""
    wanted = {r.line for r in rejects if not r.raw}
    if not wanted:
        return
    raws: dict[int, str] = {}
    for row in read_rows(prepared.path, fmt=prepared.fmt, required=()):
        if row.line in wanted:
            raws[row.line] = row.raw
    for n, reject in enumerate(rejects):
        if not reject.raw and reject.line in raws:
            rejects[n] = Reject(reject.line, reject.reason, raws[reject.line])


def write_rejects(path: Path, rejects: Sequence[Reject]) -> None:
    """The rejects file: CSV ``line,reason,raw``, one line per rejected row or record."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "reason", "raw"])
    for reject in rejects:
        writer.writerow([reject.line, reject.reason, reject.raw])
    Path(path).write_text(buffer.getvalue(), encoding="utf-8", newline="")


def read_model_figures(engine: Engine) -> Callable[[Sequence[str]], dict[str, tuple[int, int]]]:
    """(quantity, buffer) of these vintage ids as the read model holds them."""

    def figures(ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        with engine.connect() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = list(ids[start : start + _IN_CHUNK])
                query = select(vintages.c.vintage_id, vintages.c.quantity, vintages.c.buffer).where(
                    vintages.c.vintage_id.in_(chunk)
                )
                found.update((row[0], (int(row[1]), int(row[2]))) for row in conn.execute(query))
        return found

    return figures


def reconcile(summary: ImportSummary, accepted: set[str], engine: Engine) -> None:
    """Put the ledger's issued and buffer figures for the file's vintages beside the file's:
    read back from the read model after the import, not from what the importer counted."""
    held = read_model_figures(engine)(sorted(accepted))
    summary.tally("issued", "ledger", sum(q for q, _ in held.values()))
    summary.tally("buffer", "ledger", sum(b for _, b in held.values()))


def read_model_ids(engine: Engine) -> Callable[[Sequence[str]], set[str]]:
    """Which of these vintage ids the read model holds, in a few ``IN`` queries.

    The read model only ever holds vintages the event store has, so whatever it finds is a
    duplicate for certain; what it misses may still exist (it can lag after a crash), which
    the optimistic insert in :meth:`Loader._issue` settles.
    """

    def known(ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with engine.connect() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = list(ids[start : start + _IN_CHUNK])
                query = select(vintages.c.vintage_id).where(vintages.c.vintage_id.in_(chunk))
                found.update(row[0] for row in conn.execute(query))
        return found

    return known


_IN_CHUNK = 500


def load(
    runtime: Runtime,
    prepared: PreparedFile,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Load a prepared file through a runtime (its read model answers the duplicate check)."""
    loader = Loader(
        runtime.app,
        batch,
        progress,
        runtime.refresh,
        read_model_ids(runtime.engine),
        read_model_figures(runtime.engine),
    )
    summary = loader.run(prepared)
    reconcile(summary, loader.accepted, runtime.engine)
    return summary


def save_rejects(summary: ImportSummary, path: Path | None = None) -> None:
    """Write the rejects file if anything was rejected (default ``FILE.rejects.csv``)."""
    if summary.rejects:
        target = path or default_rejects_path(Path(summary.file))
        write_rejects(target, summary.rejects)
        summary.rejects_file = str(target)


def import_file(
    runtime: Runtime,
    fmt: str,
    path: Path,
    *,
    batch: int = BATCH,
    rejects: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Prepare, load, and write the rejects file: the whole ``permanence import``."""
    summary = load(runtime, prepare(fmt, path), batch=batch, progress=progress)
    save_rejects(summary, rejects)
    return summary


__all__ = [
    "BATCH",
    "KINDS",
    "ImportSummary",
    "Loader",
    "PreparedFile",
    "Reject",
    "default_rejects_path",
    "import_file",
    "load",
    "prepare",
    "read_model_ids",
    "reversal_cause",
    "save_rejects",
    "write_rejects",
]
