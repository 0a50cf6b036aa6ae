"""Turning parsed registry records into ledger commands, so that importing is idempotent.

Why every command is keyed: an import must be safe to repeat and to resume after a crash, so
each record becomes a command whose effect can be recognised in the ledger afterwards.

- **Issuance**: the vintage id is ``vintage_id_for(program, source_key)``, so an issuance
  already in the ledger (from an earlier run, or earlier in the same file) is a duplicate.
  Issuances go in batches, one transaction each (``LedgerApp.issue_many``); a crash loses at
  most the batch in flight, and re-running the import skips what was saved.
- **Everything else** runs after all of the file's issuances, as commands in batches that
  :meth:`ledger.application.LedgerApp.run_batch` loads, runs and saves: see
  :mod:`permanence.imports.commands` for each command and its mark.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from eventsourcing.persistence import RecordConflictError

from ledger.application import (
    ImpliedVerifications,
    LedgerApp,
    retry_on_conflict,
    vintage_id_for,
)
from ledger.errors import LedgerError

from . import PROGRAMS, history
from .causes import reversal_cause
from .commands import Command, Outcome, Refused, bind, commands_for
from .files import (
    PreparedFile,
    default_rejects_path,
    fill_raw,
    prepare,
    save_rejects,
    write_rejects,
)
from .issuance import IssuanceSpecs
from .marks import Marks, Tracked, reversal_note
from .read_model import read_model_figures, read_model_ids, reconcile
from .records import IssuanceRecord, Record, Rejected, ReversalRecord, Skipped
from .summary import KINDS, ROW_FAULTS, ImportSummary, Reject, Status, kind_of

if TYPE_CHECKING:
    from ledger.batches import Unit
    from permanence.runtime import Runtime

BATCH = 2_000


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
        #: The file's vintages the ledger holds with the file's figures (issued or already).
        self.accepted: set[str] = set()
        self.figures = figures
        self.specs = IssuanceSpecs(app.catalog, "")
        self._project_ids: dict[tuple[str, str], list[str]] = {}
        self._reversal_projects: dict[tuple[str, str], str] = {}

    def run(self, prepared: PreparedFile) -> ImportSummary:
        summary = ImportSummary(prepared.fmt, str(prepared.path), PROGRAMS[prepared.fmt])
        self.specs = IssuanceSpecs(self.app.catalog, prepared.fmt)
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
        fill_raw(prepared, summary.rejects)
        summary.rejects.sort(key=lambda r: r.line)
        summary.findings += self.specs.unknown_type_findings() + self.findings
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
        specs = {vintage_id_for(r.program, r.source_key): self.specs.spec(r, summary) for r in records}
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


    def _record_history(self, summary: ImportSummary) -> None:
        """Record the verifications the file's issuances imply (see :mod:`.history`), in
        transactions of about a batch of vintages each."""
        chunk: list[ImpliedVerifications] = []
        size = 0
        for (program, project), evidence in self._evidence.items():
            if (program, project) not in self._reversible_projects:
                continue  # nothing of it can lapse (see the module docstring of .history)
            ids = list(dict.fromkeys(self._file_vintages.get((program, project), [])))
            if self.app.index is not None:
                ids += [i for i in self.app.index.vintage_ids_of_project(project) if i not in ids]
            chunk.append((program, ids, history.implied(program, evidence)))
            size += len(ids)
            if size >= self.batch:
                self._verify(chunk, summary)
                chunk, size = [], 0
        if chunk:
            self._verify(chunk, summary)

    def _verify(self, chunk: list[ImpliedVerifications], summary: ImportSummary) -> None:
        try:
            summary.verifications += self.app.verify_implied(chunk)
        except ROW_FAULTS as exc:
            summary.findings.append(f"verifications implied by the file not recorded: {_why(exc)}")

    # ------------------------------------------------------------------ other commands

    def _run_commands(self, commands: list[Command], summary: ImportSummary) -> None:
        for start in range(0, len(commands), self.batch):
            chunk = commands[start : start + self.batch]
            outcomes = [self._outcome(command, result) for command, result in zip(
                chunk, self.app.run_batch(bind(chunk, self), Marks, (Refused, *ROW_FAULTS)),
                strict=True)]
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

    @staticmethod
    def _outcome(command: Command, result: str | BaseException) -> Outcome:
        """A command's result, or the reason it was rejected (nothing of it was saved)."""
        what = command.kind.replace("_", " ")
        if isinstance(result, Refused):
            return Outcome("rejected", f"{what}: {result}")
        if isinstance(result, BaseException):
            return Outcome("rejected", f"{what}: {_why(result)}")
        return Outcome(cast(Status, result))

    def project_vintages(self, unit: Unit[Marks], program: str, project: str) -> list[Tracked]:
        """The project's vintages of this program: this file's, and any the ledger indexes."""
        key = (program, project)
        if key not in self._project_ids:
            ids = list(dict.fromkeys(self._file_vintages.get(key, [])))
            if self.app.index is not None:
                ids += [i for i in self.app.index.vintage_ids_of_project(project) if i not in ids]
            self._project_ids[key] = ids
        found = (unit.get(vid) for vid in self._project_ids[key])
        return [t for t in found if t is not None and t.vintage.program == program]

    def reversal_parts(self, unit: Unit[Marks], program: str, key: str) -> list[tuple[Tracked, str]]:
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
        return [(t, rid) for t in vintages for rid, _ in t.notes.reversals.get(note, [])]


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



def _reject_conflict(
    summary: ImportSummary, counts: Any, record: IssuanceRecord, why: str
) -> None:
    """An issuance whose key another row or the ledger holds with other figures."""
    counts.rejected += 1
    summary.tally("issued", "rejected", record.quantity)
    summary.tally("buffer", "rejected", record.buffer)
    summary.rejects.append(
        Reject(record.line, f"line {record.line}: issuance {record.source_key}: {why}", ""))



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
