"""The commands an import runs for every record but an issuance, keyed so that they are
idempotent.

Everything but issuance runs after all of the file's issuances (CARB comments name reversals on
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

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar, Protocol

from ledger.application import vintage_id_for
from ledger.batches import Unit

from .causes import reversal_cause
from .marks import (
    Marks,
    Tracked,
    buffer_reference,
    credit_mark,
    invalidation_reason,
    reversal_note,
)
from .records import (
    BufferRetirementRecord,
    CreditRecord,
    InvalidationRecord,
    Record,
    RetirementRecord,
    ReversalRecord,
    SurrenderRecord,
)
from .summary import KINDS, Kind, Status, kind_of


class Refused(Exception):
    """The importer itself refuses a record (no vintage to attach it to, ...)."""


@dataclass
class Outcome:
    status: Status
    reason: str | None = None


class Context(Protocol):
    """What commands ask of the import that runs them: the vintages of a project (the
    file's and the ledger's), a reversal's parts by key, and where findings go."""

    findings: list[str]

    def project_vintages(self, unit: Unit[Marks], program: str, project: str) -> list[Tracked]:
        ...

    def reversal_parts(self, unit: Unit[Marks], program: str, key: str) -> list[tuple[Tracked, str]]:
        ...


class Command:
    """A group of records with one mark, applied as one unit."""

    kind: Kind
    records: Sequence[Record]
    #: True when the command may raise more than one event (see :class:`ledger.batches.Unit`).
    several_steps: ClassVar[bool] = True

    def apply(self, ctx: Context, unit: Unit[Marks]) -> Status:
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

    def apply(self, ctx: Context, unit: Unit[Marks]) -> Status:
        first = self.records[0]
        if any(
            (r.on, r.quantity, r.intentional) != (first.on, first.quantity, first.intentional)
            for r in self.records
        ):
            raise Refused(f"reversal {first.source_key} is stated more than once, differently")
        note = reversal_note(first.program, first.source_key)
        vintages = ctx.project_vintages(unit, first.program, first.project)
        recorded = sum(q for t in vintages for _, q in t.notes.reversals.get(note, []))
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
                if t.vintage.open_on(first.on)
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
            room = v.reversal_room_at(first.on)
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
            tracked.notes.reversals.setdefault(note, []).append((rid, take))
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

    def apply(self, ctx: Context, unit: Unit[Marks]) -> Status:
        first = self.records[0]
        key = first.for_reversal
        reference = buffer_reference(first.program, first.source_key, key or "unnamed", first.on)
        source = _issuance(unit, first.program, first.source_key)
        parts = [] if key is None else ctx.reversal_parts(unit, first.program, key)
        on = first.on or max(
            [source.vintage.issued_on] + [t.vintage.reversals[rid].on for t, rid in parts]
        )
        done = sum(t.notes.compensations[("buffer", reference)] for t in _distinct(parts))
        done += source.notes.pool_cancellations[reference] + source.notes.holds[reference]
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
            source.notes.pool_cancellations[reference] += held
            why = first.unread or (
                f"reversal {key} is not recorded in the ledger"
                if not parts
                else f"only {due} of reversal {key} was still due"
            )
            ctx.findings.append(
                f"line {first.line}: {held} buffer credits of {first.source_key} recorded as a "
                f"pool cancellation for {key or 'no named reversal'} on {on}: {why}"
            )
        return "imported"


@dataclass
class SurrenderCommand(Command):
    records: Sequence[SurrenderRecord]
    kind: Kind = "surrender"

    def apply(self, ctx: Context, unit: Unit[Marks]) -> Status:
        first = self.records[0]
        source = _issuance(unit, first.program, first.source_key)
        on = source.vintage.issued_on
        vintages = ctx.project_vintages(unit, first.program, first.project)
        reference = first.source_key
        remaining = _still_to_do(
            self.quantity,
            sum(t.notes.compensations[("proponent", reference)] for t in vintages),
            f"surrender of {first.source_key}",
        )
        if remaining == 0:
            return "duplicate"
        owed = sorted(
            (
                (r.on, t.vintage.issued_on, t.vid, r.reversal_id, t)
                for t in vintages
                for r in t.vintage.avoidable_owed_on(on)
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
            tracked.notes.compensations[(route, reference)] += take
            remaining -= take
        if remaining == 0:
            break


def _issuance(unit: Unit[Marks], program: str, source_key: str) -> Tracked:
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

    def apply(self, ctx: Context, unit: Unit[Marks]) -> Status:
        first = self.records[0]
        tracked = _issuance(unit, first.program, first.source_key)
        reason = invalidation_reason(first.program, first.source_key)
        remaining = _still_to_do(
            self.quantity,
            tracked.notes.invalidations[reason],
            f"invalidation of {first.source_key}",
        )
        if remaining == 0:
            return "duplicate"
        tracked.vintage.invalidate(remaining, tracked.vintage.issued_on, reason)
        tracked.notes.invalidations[reason] += remaining
        return "imported"


@dataclass
class RetirementCommand(Command):
    records: Sequence[RetirementRecord]
    kind: Kind = "retirement"
    several_steps: ClassVar[bool] = False

    def apply(self, ctx: Context, unit: Unit[Marks]) -> Status:
        first = self.records[0]
        tracked = _issuance(unit, first.program, first.source_key)
        mark = (first.on, first.beneficiary)
        remaining = _still_to_do(
            self.quantity, tracked.notes.retirements[mark], f"retirement of {first.source_key}"
        )
        if remaining == 0:
            return "duplicate"
        tracked.vintage.retire(remaining, first.on, first.beneficiary)
        tracked.notes.retirements[mark] += remaining
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

    def apply(self, ctx: Context, unit: Unit[Marks]) -> Status:
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
                    for t in ctx.project_vintages(unit, first.program, first.project)
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
                tracked.notes.retirements[(first.on, first.reason)] += take
            else:
                tracked.vintage.cancel(take, first.on, mark)
                tracked.notes.cancellations[mark] += take
            remaining -= take
            if remaining == 0:
                break
        return "imported"


def _credit_done(tracked: Tracked, record: CreditRecord, mark: str) -> int:
    if record.action == "retire":
        return tracked.notes.retirements[(record.on, record.reason)]
    return tracked.notes.cancellations[mark]


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



@dataclass
class Bound:
    """A command bound to the import that runs it: what :meth:`LedgerApp.run_batch` runs."""

    command: Command
    ctx: Context
    several_steps: bool

    def __call__(self, unit: Unit[Marks]) -> Status:
        return self.command.apply(self.ctx, unit)


def bind(commands: Iterable[Command], ctx: Context) -> list[Bound]:
    return [Bound(c, ctx, c.several_steps) for c in commands]

