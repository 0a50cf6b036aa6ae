"""The ledger's application service: commands in, identifiers and plain values out.

It alone loads and saves aggregates. A concurrency conflict (another writer saved the same
vintage first) is retried on a fresh copy; batch commands save many aggregates in one
transaction, which is both atomic and several times faster than one save each
(:meth:`LedgerApp.run_batch` runs a caller's commands that way, the importer's among them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import Mapper, RecordConflictError

from ledger.batches import (
    BatchCommand,
    Loaded,
    N,
    Workspace,
    no_gc_pauses,
    retry_on_conflict,
)
from ledger.errors import InvalidCommand, NothingToDo, UnknownVintage
from ledger.events import CompensationRoute, TransfereeKind, VintageEvent, recording_actor
from ledger.identity import (
    CANDIDATES_SHOWN,
    MIN_PREFIX,
    VintageIndex,
    parse_vintage_id,
    resolve_vintage_id,
    serials_key,
    vintage_id_for,
)
from ledger.mapper import PydanticMapper
from ledger.profiles import ProfileCatalog
from ledger.replay import replay
from ledger.vintage import Vintage

R = TypeVar("R")
#: One project's implied verifications: its program, its vintages' ids, and each date an
#: issuance of it implies a verification on, with the ``verifier`` text to record.
ImpliedVerifications = tuple[str, Sequence[str], Mapping[date, str]]
class LedgerApp(Application[UUID]):
    """Records issuances, verifications, reversals and compensations."""

    name = "permanence"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        catalog: ProfileCatalog | None = None,
        index: VintageIndex | None = None,
        today: Callable[[], date] = date.today,
    ) -> None:
        super().__init__(env)
        self.catalog = catalog or ProfileCatalog.load()
        self.index = index
        #: the business date nothing may be dated after (the scheduler's clock)
        self.today = today
        self.after_save: list[Callable[[], object]] = []

    def not_after_today(self, day: date, field: str = "on") -> date:
        """Refuse a fact dated in the future: looking ahead is what ``simulate`` is for."""
        today = self.today()
        if day > today:
            raise InvalidCommand(
                f"{field}: {day} is after today ({today}); facts cannot be dated in the future "
                "(simulate looks ahead)"
            )
        return day

    def construct_mapper(self) -> Mapper[UUID]:
        return PydanticMapper()

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """Record the pending events of ``objs`` in one transaction, then notify listeners.

        Same as eventsourcing's ``save`` without its per-object protocol checks, which
        cost more than the insert itself when thousands of vintages are saved at once.
        """
        processing: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            processing.events.extend(obj.collect_events())
            processing.aggregates[obj.id] = obj
        processing.saved_kwargs.update(kwargs)
        recordings = self._record(processing)
        for listener in self.after_save:
            listener()
        return recordings

    @contextmanager
    def acting_as(self, actor: str | None) -> Iterator[None]:
        """Record events made in this block as made by ``actor``."""
        token = recording_actor.set(actor)
        try:
            yield
        finally:
            recording_actor.reset(token)

    # ------------------------------------------------------------------ issuance

    def issue(self, **spec: Any) -> str:
        """Issue one vintage; returns its id."""
        return self.issue_many([spec])[0]

    def issue_many(self, specs: Sequence[dict[str, Any]]) -> list[str]:
        """Issue many vintages in one transaction; returns their ids in order."""
        with no_gc_pauses():
            vintages = [self._new_vintage(spec) for spec in specs]
            if vintages:
                try:
                    self.save(*vintages)
                except RecordConflictError:
                    self._refuse_issued_serials(vintages)
                    raise
            return [str(v.id) for v in vintages]

    def _new_vintage(self, spec: dict[str, Any]) -> Vintage:
        spec = dict(spec)
        if isinstance(spec.get("on"), date):
            self.not_after_today(spec["on"])
        profile = self.catalog.get(spec.pop("program"))
        given = spec.pop("vintage_id", None)
        serials = serials_key(spec.get("serial_first"), spec.get("serial_last"))
        if given:
            vintage_id = parse_vintage_id(given)
        elif serials:  # the same facts, the same id: issuing the range twice is refused
            vintage_id = UUID(vintage_id_for(profile.name, f"serials:{serials}"))
        else:
            vintage_id = uuid4()
        return Vintage.issue(
            vintage_id=vintage_id,
            program=profile.name,
            pool=spec.pop("pool", None) or profile.pool_name,
            rules=self.catalog.rules(profile.name),
            **spec,
        )

    def _refuse_issued_serials(self, vintages: Sequence[Vintage]) -> None:
        """After a save refused for an id already taken: if the id is one a serial range
        determined, say so by the serials (nothing was written: the save is one
        transaction). Checked after the conflict, not before, so batches pay nothing."""
        seen: set[UUID] = set()
        for v in vintages:
            serials = serials_key(v.serial_first, v.serial_last)
            if serials is None or v.id != UUID(vintage_id_for(v.program, f"serials:{serials}")):
                continue
            if v.id in seen:
                raise InvalidCommand(f"serials: {serials} of program {v.program} given twice")
            if self.recorder.select_events(v.id, limit=1):
                raise InvalidCommand(
                    f"serials: {serials} of program {v.program} are already issued "
                    f"(vintage {v.id})")
            seen.add(v.id)

    def existing(self, vintage_ids: Iterable[str]) -> set[str]:
        """Which of these vintage ids the ledger already holds."""
        found = set()
        for vid in vintage_ids:
            if self.recorder.select_events(parse_vintage_id(vid), limit=1):
                found.add(vid)
        return found

    # ------------------------------------------------------------------ commands

    def verify(
        self,
        vintage_id: str,
        on: date,
        period_start: date | None = None,
        period_end: date | None = None,
        verifier: str | None = None,
    ) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.verify(on, period_start, period_end, verifier))

    def verify_project(self, project: str, on: date, verifier: str | None = None) -> list[str]:
        """Verify every vintage of a project still under monitoring, in one transaction."""
        self.not_after_today(on)
        ids = self._project_vintages(project)

        def monitored(v: Vintage) -> bool:
            return v.issued_on <= on < v.period_end

        return self._batch(ids, lambda v: v.verify(on, verifier=verifier), monitored)

    def verify_implied(self, projects: Sequence[ImpliedVerifications]) -> int:
        """Record, in one transaction, the verifications each project's issuances imply on
        its vintages of the program, those that change what the vintage's verifications say
        (:meth:`Vintage.verifications_implied_by`). Returns how many were recorded."""

        def attempt() -> int:
            changed, recorded = [], 0
            for program, vintage_ids, evidence in projects:
                dates = sorted(evidence)
                for vid in vintage_ids:
                    vintage = self._fold(vid)
                    if vintage is None or vintage.program != program:
                        continue
                    chosen = vintage.verifications_implied_by(dates, self.today())
                    for on in chosen:
                        vintage.verify(on, verifier=evidence[on])
                    if chosen:
                        vintage.correct()
                        changed.append(vintage)
                        recorded += len(chosen)
            if changed:
                self.save(*changed)
            return recorded

        with no_gc_pauses():
            return retry_on_conflict(attempt)

    def cancel_buffer(self, vintage_id: str, quantity: int, on: date, reason: str) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.cancel_buffer(quantity, on, reason))

    def _project_vintages(self, project: str) -> list[str]:
        if self.index is None:
            raise InvalidCommand("a command by project needs the vintage index")
        ids = self.index.vintage_ids_of_project(project)
        if not ids:
            raise UnknownVintage(f"project: no vintages of project {project!r}")
        return ids

    def record_reversal(
        self,
        vintage_id: str,
        on: date,
        quantity: int,
        cause: str,
        negligence: bool = False,
        wilful: bool = False,
        within_control: bool = False,
        note: str | None = None,
    ) -> dict[str, str]:
        self.not_after_today(on)
        rid, classification = self._command(
            vintage_id,
            lambda v: v.record_reversal(on, quantity, cause, negligence, wilful, within_control, note),
        )
        return {"reversal_id": rid, "classification": classification}

    def compensate(
        self,
        vintage_id: str,
        reversal_id: str,
        route: CompensationRoute,
        quantity: int,
        on: date,
        reference: str | None = None,
    ) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.compensate(reversal_id, route, quantity, on, reference))

    def retire(self, vintage_id: str, quantity: int, on: date, beneficiary: str | None = None) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.retire(quantity, on, beneficiary))

    def cancel(self, vintage_id: str, quantity: int, on: date, reason: str | None = None) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.cancel(quantity, on, reason))

    def invalidate(self, vintage_id: str, quantity: int, on: date, reason: str | None = None) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.invalidate(quantity, on, reason))

    def hold_buffer(self, vintage_id: str, quantity: int, on: date, reason: str | None = None) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.hold_buffer(quantity, on, reason))

    def release_buffer(self, vintage_id: str, quantity: int, on: date) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.release_buffer(quantity, on))

    def transfer_liability(
        self,
        vintage_id: str,
        to: str,
        kind: TransfereeKind,
        on: date,
        term_years: int | None = None,
        monitoring: bool = False,
    ) -> None:
        self.not_after_today(on)
        self._command(
            vintage_id, lambda v: v.transfer_liability(to, kind, on, term_years, monitoring)
        )

    def insure(
        self,
        vintage_ids: Sequence[str],
        insurer: str,
        on: date,
        until: date,
        limit: int,
    ) -> list[str]:
        """Record one insurance policy (its limit per vintage) on each of these vintages."""
        self.not_after_today(on)
        return self._batch(
            vintage_ids, lambda v: v.insure(insurer, on, until, limit),
            lambda v: v.reversible,
        )

    def insure_project(
        self, project: str, insurer: str, on: date, until: date, limit: int
    ) -> list[str]:
        return self.insure(self._project_vintages(project), insurer, on, until, limit)

    def label_sandbox(self, vintage_id: str, label: str, innovation: str, on: date) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.label_sandbox(label, innovation, on))

    def note(self, vintage_id: str, text: str, on: date) -> None:
        self.not_after_today(on)
        self._command(vintage_id, lambda v: v.note(text, on))

    def assess_risk(self, vintage_ids: Sequence[str], on: date, **assessment: Any) -> list[str]:
        """Record one risk assessment on many vintages (a project's), in one transaction."""
        self.not_after_today(on)
        return self._batch(vintage_ids, lambda v: v.assess_risk(on, **assessment))

    # ------------------------------------------------------------------ time-driven

    def record_lapses(self, vintage_ids: Sequence[str], as_of: date) -> list[str]:
        """Record the lapses of each vintage that have arisen by ``as_of`` (once each)."""
        self.not_after_today(as_of, "as_of")
        return self._batch(vintage_ids, lambda v: v.record_lapses(as_of),
                           lambda v: v.is_lapsing(as_of))

    def end_periods(self, vintage_ids: Sequence[str], as_of: date) -> list[str]:
        self.not_after_today(as_of, "as_of")
        return self._batch(
            vintage_ids,
            lambda v: v.end_period(as_of),
            lambda v: not v.period_closed and as_of >= v.period_end,
        )

    def record_defaults(self, vintage_ids: Sequence[str], as_of: date) -> list[str]:
        """Record the proponent defaults of these vintages arisen by ``as_of``."""
        self.not_after_today(as_of, "as_of")
        return self._batch(vintage_ids, lambda v: v.record_defaults(as_of))

    # ------------------------------------------------------------------ reads

    def resolve(self, vintage_id: str) -> str:
        """The full id of a vintage given by its id or a unique prefix (8+ hex characters)."""
        return resolve_vintage_id(vintage_id, self.index)

    def vintage(self, vintage_id: str, version: int | None = None) -> Vintage:
        vintage_id = self.resolve(vintage_id)
        try:
            found: object = self.repository.get(parse_vintage_id(vintage_id), version=version)
        except AggregateNotFoundError:
            raise UnknownVintage(f"vintage: no vintage {vintage_id}") from None
        if not isinstance(found, Vintage):
            raise UnknownVintage(f"vintage: {vintage_id} is not a vintage")
        return found

    def show(
        self, vintage_id: str, as_of: date, known_at: datetime | None = None
    ) -> dict[str, Any]:
        """The vintage as of a business date, from the events dated by then and recorded
        by ``known_at``."""
        vintage_id = self.resolve(vintage_id)
        vintage, _ = replay(self.stream(vintage_id), as_of, known_at)
        if vintage is None:
            return {"vintage_id": str(parse_vintage_id(vintage_id)), "as_of": as_of.isoformat(),
                    "status": "not-issued"}
        return vintage.summary(as_of)

    def stream(self, vintage_id: str) -> list[VintageEvent]:
        """The vintage's events in stream order."""
        vintage_id = self.resolve(vintage_id)
        vid = parse_vintage_id(vintage_id)
        found: list[Any] = list(self.events_of(vid))
        if not found:
            raise UnknownVintage(f"vintage: no vintage {vintage_id}")
        if not isinstance(found[0], VintageEvent):
            raise UnknownVintage(f"vintage: {vintage_id} is not a vintage")
        return found

    def events_of(self, vid: UUID) -> Iterator[VintageEvent]:
        for stored in self.recorder.select_events(vid):
            yield self.mapper.to_domain_event(stored)  # type: ignore[misc]

    # ------------------------------------------------------------------ batches of commands

    def run_batch(
        self,
        commands: Sequence[BatchCommand[N, R]],
        notes: Callable[[], N],
        refused: tuple[type[BaseException], ...],
    ) -> list[R | BaseException]:
        """Run commands on the vintages they name and save every vintage changed in one
        transaction; returns each command's result, or what it raised among ``refused``.

        A refused command leaves nothing behind (its unit is dropped) and never stops the
        ones after it. Each vintage is loaded once per batch with ``notes()`` read from its
        events beside it. On a concurrency conflict the whole batch is reloaded and run
        again (``save`` does not retry), so what is saved is always consistent.
        """

        def read(vid: str) -> Loaded[N] | None:
            seen = notes()
            vintage = self._fold(vid, seen.see)
            return None if vintage is None else Loaded(vid, vintage, seen)

        def attempt() -> list[R | BaseException]:
            work: Workspace[N] = Workspace(read)
            results: list[R | BaseException] = []
            for command in commands:
                unit = work.unit(isolated=command.several_steps)
                try:
                    results.append(command(unit))
                except refused as exc:
                    results.append(exc)
                    continue
                unit.commit()
            changed = work.changed()
            if changed:
                self.save(*changed)
            return results

        with no_gc_pauses():
            return retry_on_conflict(attempt)

    # ------------------------------------------------------------------ machinery

    def _fold(
        self, vid: str, see: Callable[[VintageEvent], object] | None = None
    ) -> Vintage | None:
        """The vintage from one read of its stream (``None`` if there is none), each event
        applied as the repository would (``event.mutate``) and shown to ``see``: a batch
        reads thousands, and the repository's per-aggregate checks cost more than the fold."""
        vintage: Any = None
        for event in self.events_of(parse_vintage_id(vid)):
            vintage = event.mutate(vintage)
            if see is not None:
                see(event)
        return vintage if isinstance(vintage, Vintage) else None

    def _command(self, vintage_id: str, action: Callable[[Vintage], R]) -> R:
        """Load, act, correct what the new fact changed (:meth:`Vintage.correct`), save;
        on a concurrency conflict reload and act again."""
        vintage_id = self.resolve(vintage_id)

        def attempt() -> R:
            vintage = self.vintage(vintage_id)
            result = action(vintage)
            vintage.correct()
            self.save(vintage)
            return result

        return retry_on_conflict(attempt)

    def _batch(
        self,
        vintage_ids: Sequence[str],
        action: Callable[[Vintage], Any],
        applies: Callable[[Vintage], bool] = lambda v: True,
    ) -> list[str]:
        """Act on many vintages and save them together; returns the ids acted on.

        Vintages the action does not apply to are skipped; on a conflict the whole batch
        is reloaded and re-run, so the saved set is always consistent.
        """

        def attempt() -> list[str]:
            changed = []
            for vid in vintage_ids:
                vintage = self.vintage(vid)
                if not applies(vintage):
                    continue
                try:
                    action(vintage)
                except NothingToDo:
                    continue
                vintage.correct()
                changed.append(vintage)
            if changed:
                self.save(*changed)
            return [str(v.id) for v in changed]

        return retry_on_conflict(attempt)


__all__ = ["CANDIDATES_SHOWN", "MIN_PREFIX", "ImpliedVerifications", "LedgerApp", "VintageIndex",
           "parse_vintage_id", "resolve_vintage_id", "retry_on_conflict", "vintage_id_for"]
