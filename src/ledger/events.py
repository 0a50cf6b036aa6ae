"""The vintage's events: past-tense facts, typed with pydantic, stored as readable JSON.

Every event carries ``on``, its business date, beside eventsourcing's ``timestamp`` (when
it was recorded), so the ledger answers both "as of" and "known at" questions, and
``recorded_by``, the actor who recorded it. Events evolve through ``class_version`` and
``upcast_vN_vN+1`` static methods, which the mapper applies when reading older records.
"""

from __future__ import annotations

from contextvars import ContextVar
from datetime import date, datetime
from typing import Any, ClassVar, Literal
from uuid import UUID

from eventsourcing.domain import CanInitAggregate, CanMutateAggregate
from eventsourcing.utils import resolve_topic
from pydantic import BaseModel, ConfigDict, Field

from ledger.classification import Classification
from ledger.obligors import Obligor
from ledger.profiles import Rules

#: Who is recording events in the current context (a CLI user, an API token name, the
#: scheduler). The application sets it; events read it when they are created.
recording_actor: ContextVar[str | None] = ContextVar("recording_actor", default=None)

CompensationRoute = Literal["buffer", "proponent", "insurance", "deduction", "fund", "jurisdiction"]
TransfereeKind = Literal["fund", "insurer", "jurisdiction"]


class DomainEvent(BaseModel):
    """Base of all persisted events: immutable, validated, JSON-serialisable."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    originator_id: UUID
    originator_version: int
    timestamp: datetime
    recorded_by: str | None = Field(default_factory=lambda: recording_actor.get())


class VintageEvent(DomainEvent, CanMutateAggregate[UUID]):
    """An event in a vintage's stream; ``on`` is its business date."""

    on: date

    def apply(self, aggregate: Any) -> None:
        aggregate.when(self)


class Issued(VintageEvent, CanInitAggregate[UUID]):
    """Credits were issued: the stream, and the vintage's permanence clock, begin here."""

    originator_topic: str
    program: str
    pool: str
    project: str
    vintage_year: int | None = None
    vintage_start: date | None = None
    vintage_end: date | None = None
    serial_first: str | None = None
    serial_last: str | None = None
    quantity: int
    buffer: int
    crediting_start: date | None = None
    crediting_end: date | None = None
    risk_class: str | None = None
    source_key: str | None = None
    corresponding_adjustment: str | None = None
    authorization: str | None = None
    project_type: str | None = None
    #: False for credits that cannot reverse (destroyed gases, avoided emissions): they
    #: count as issued but carry no exposure, no lapse and no buffer expectation.
    reversible: bool = True
    rules: Rules

    def mutate(self, aggregate: Any) -> Any:
        """Construct the vintage from its first event (lean: bulk issuance and rebuilds)."""
        cls = resolve_topic(self.originator_topic)
        vintage = cls.__new__(cls)
        vintage.__base_init__(self.originator_id, self.originator_version, self.timestamp)
        self.apply(vintage)
        return vintage


class Verified(VintageEvent):
    """A monitoring report covering a period was verified."""

    class_version: ClassVar[int] = 2
    period_start: date | None = None
    period_end: date | None = None
    verifier: str | None = None

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Version 1 had no verifier: older records read as an unnamed verifier."""
        state["verifier"] = None


class RiskAssessed(VintageEvent):
    """The project's reversal risk was (re)assessed with a named tool."""

    tool: str
    tool_version: str
    buffer_rate: float
    annual_probability: float
    category_probabilities: dict[str, float] = Field(default_factory=dict)
    passed: bool = True


class ReversalRecorded(VintageEvent):
    """Stored carbon went back to the atmosphere; someone owes compensation."""

    reversal_id: str
    quantity: int
    cause: str
    negligence: bool = False
    wilful: bool = False
    within_control: bool = False
    classification: Classification
    obligor: Obligor
    note: str | None = None


class MonitoringLapsed(VintageEvent):
    """Verification lapsed beyond the grace: an avoidable reversal owed by the proponent.

    ``on`` is the day the obligation arose (due + grace + 1 day), whatever day the sweep ran.
    """

    reversal_id: str
    quantity: int
    basis: str
    verification_due: date


class LapseCured(VintageEvent):
    """A later verification cured a lapse (older streams only: a cure is now derived from
    the verifications' business dates, so it can never disagree with them)."""

    reversal_id: str


class LapseWithdrawn(VintageEvent):
    """A recorded lapse the facts no longer support (a verification dated before it was
    recorded later): it never arose. Dated as the lapse, so it hides it at every as-of
    date; at an earlier ``known_at`` the lapse still shows."""

    reversal_id: str
    reason: str


class LapseRevised(VintageEvent):
    """A recorded lapse's amount, corrected: facts dated before it, recorded after it,
    changed what was still exposed on its day."""

    reversal_id: str
    quantity: int
    reason: str


class DefaultWithdrawn(VintageEvent):
    """A recorded proponent default the facts no longer support (the reversal was settled
    by its deadline, or withdrawn)."""

    reversal_id: str
    reason: str


class Insured(VintageEvent):
    """An insurance policy covers the vintage's unavoidable reversals from ``on`` to
    ``until`` (inclusive, possibly past the period end), up to ``limit`` tonnes."""

    insurer: str
    until: date
    limit: int


class Compensated(VintageEvent):
    """A reversal was compensated (fully or in part) by one route."""

    reversal_id: str
    route: CompensationRoute
    quantity: int
    reference: str | None = None


class ProponentDefaulted(VintageEvent):
    """An avoidable reversal was not compensated by the deadline; the pool now owes it."""

    reversal_id: str
    quantity: int


class Retired(VintageEvent):
    """Credits were retired (claimed); they must still stay permanent."""

    quantity: int
    beneficiary: str | None = None


class Cancelled(VintageEvent):
    """Credits were cancelled (not for compensation); they leave the exposure."""

    quantity: int
    reason: str | None = None


class Invalidated(VintageEvent):
    """Credits were invalidated after issuance; they leave the exposure."""

    quantity: int
    reason: str | None = None


class BufferHeld(VintageEvent):
    """Part of the vintage's buffer contribution was put on hold."""

    quantity: int
    reason: str | None = None


class BufferCancelled(VintageEvent):
    """The pool cancelled buffer credits this vintage contributed, for a reversal the
    ledger does not hold (another program's project, a reversal named only in a comment):
    they leave the pool's balance like a buffer compensation."""

    quantity: int
    reason: str


class BufferReleased(VintageEvent):
    """A hold on buffer credits was released."""

    quantity: int


class LiabilityTransferred(VintageEvent):
    """Liability for future reversals moved to a fund, insurer or jurisdiction."""

    to: str
    kind: TransfereeKind
    #: a permanence fund taking the vintage on after its period, for this many years
    term_years: int | None = None
    #: whether the monitoring obligation moved too (the transferee's lapses then)
    monitoring: bool = False


class PeriodEnded(VintageEvent):
    """The monitoring and compensation period ended."""


class SandboxLabelled(VintageEvent):
    """Credits from an innovation pilot carry a disclosed label (e.g. ``CCP-I``)."""

    label: str
    innovation: str


class AuditNoted(VintageEvent):
    """A free-text audit fact (a correction notice, a document reference)."""

    text: str


#: Facts that may still be recorded after a vintage's period ends: they settle or
#: describe what happened within it, and never create new liability.
AUDIT_FACTS: tuple[type[VintageEvent], ...] = (
    Verified,
    Compensated,
    ProponentDefaulted,
    SandboxLabelled,
    AuditNoted,
    PeriodEnded,
    BufferReleased,
    BufferCancelled,
    LapseWithdrawn,
    LapseRevised,
    DefaultWithdrawn,
)

