"""The shapes of the API's answers, so ``/openapi.json`` describes every one.

The read models and the ledger build plain values (they know nothing of HTTP); these models
name and document those values. Trustee answers are served as cached bytes, so their model
documents the answer without re-validating it on every request.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

Tonnes = int
Day = str
"""A date YYYY-MM-DD."""
Instant = str
"""An ISO 8601 timestamp with its offset."""

DUE_DESCRIPTION = ("Tonnes due by obligor (proponent, pool, fund, jurisdiction, insurer): "
                   "reversals not yet compensated.")


class Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------------- trustee


class Figures(Answer):
    """Exposure and what is owed, for the whole question or one group."""

    exposure: Tonnes = Field(description="Credits still inside their permanence period.")
    transferred: dict[str, Tonnes] = Field(
        description="Exposure transferred to another bearer, by bearer.")
    due: dict[str, Tonnes] = Field(description=DUE_DESCRIPTION)
    due_total: Tonnes


class Liabilities(Figures):
    """Outstanding liabilities as of a business date."""

    as_of: Day
    known_at: Instant | None = Field(description="Only what was recorded by then (null: now).")
    filters: dict[str, str] = Field(description="The program, project and pool asked for.")
    shortfall: Tonnes = Field(description="Buffer draws the pools' balances could not cover.")
    shortfall_by_pool: dict[str, Tonnes]
    non_reversible_issued: Tonnes = Field(
        description="Credits of project types that cannot reverse: issued, carrying no "
        "exposure.")
    by: str | None = Field(None, description="The grouping asked for (absent: none).")
    groups: dict[str, Figures] | None = Field(None, description="The figures per group "
                                                                "(absent unless ``by``).")


class BufferRow(Answer):
    """One pool's buffer (or all pools' together)."""

    pool: str
    contributions: Tonnes
    drawn: Tonnes = Field(description="Draws made to compensate reversals.")
    cancelled: Tonnes = Field(description="Buffer credits cancelled by those draws.")
    on_hold: Tonnes
    balance: Tonnes = Field(description="Contributions less cancellations and holds; never "
                            "below zero.")
    shortfall: Tonnes = Field(description="Draws the balance could not cover, still owed.")
    due: Tonnes = Field(description="Reversals the pool owes and has not compensated.")
    owed: Tonnes = Field(description="due + shortfall.")
    exposure: Tonnes = Field(description="Exposure the pool bears.")
    coverage_ratio: float | None = Field(
        description="(balance - owed) / exposure; null without exposure.")


class Buffer(BufferRow):
    """The buffer over every pool asked for, then each pool."""

    as_of: Day
    known_at: Instant | None
    pools: list[BufferRow]


class RunoffYear(Answer):
    year: int
    exposure_ending: Tonnes = Field(description="Exposure whose period ends that year.")
    by_bearer: dict[str, Tonnes]


class Runoff(Answer):
    """When the exposure leaves each bearer."""

    as_of: Day
    known_at: Instant | None
    pool: str | None
    years: list[RunoffYear]
    total: Tonnes


class PoolRow(Answer):
    pool: str
    vintages: int
    contributions: Tonnes = Field(description="Buffer contributed at issuance.")


class ProjectRow(Answer):
    project: str
    vintages: int
    issued: Tonnes


class ProfileSummary(Answer):
    name: str
    version: str
    pool: str
    ccp_aligned: bool
    title: str


# ---------------------------------------------------------------------- verifier


class VintageRow(Answer):
    """One vintage in a listing."""

    vintage_id: str
    program: str
    pool: str
    project: str
    vintage_year: int | None
    quantity: Tonnes
    buffer: Tonnes
    issued_on: Day
    period_end: Day
    status: str
    reversible: bool
    labels: list[str]


class VintagePage(Answer):
    vintages: list[VintageRow]
    next_cursor: str | None = Field(description="The cursor of the next page; null on the "
                                    "last one.")


class ReversalView(Answer):
    reversal_id: str
    on: Day
    quantity: Tonnes
    cause: str
    classification: str
    obligor: str | None
    owed: dict[str, Tonnes] = Field(description="Shares owed by each obligor.")
    compensated: Tonnes
    outstanding: Tonnes
    cured_on: Day | None


class TransferView(Answer):
    on: Day
    to: str
    kind: str
    term_years: int | None
    monitoring: bool


class PolicyView(Answer):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    insurer: str
    from_: Day = Field(alias="from")
    until: Day
    limit: Tonnes


class LabelView(Answer):
    label: str
    innovation: str | None


class RiskView(Answer):
    on: Day
    tool: str
    tool_version: str | None
    buffer_rate: float | None
    annual_probability: float | None


class RulesView(Answer):
    profile: str
    version: str


class Vintage(Answer):
    """One vintage as of a business date. A vintage not yet issued by then has only
    ``vintage_id``, ``as_of`` and ``status`` (``not-issued``)."""

    vintage_id: str
    as_of: Day
    status: str
    program: str | None = None
    pool: str | None = None
    project: str | None = None
    project_type: str | None = None
    reversible: bool | None = None
    vintage_year: int | None = None
    serials: str | None = None
    quantity: Tonnes | None = None
    buffer: Tonnes | None = None
    issued_on: Day | None = None
    clock_start: Day | None = None
    period_end: Day | None = None
    last_verified: Day | None = None
    verification_due: Day | None = None
    lapse_arises_on: Day | None = None
    exposure: Tonnes | None = None
    still_exposed: Tonnes | None = None
    bearer: str | None = None
    due: dict[str, Tonnes] | None = Field(None, description=DUE_DESCRIPTION)
    outstanding_credits: Tonnes | None = None
    retired: Tonnes | None = None
    on_hold: Tonnes | None = None
    reversals: list[ReversalView] | None = None
    transfer: TransferView | None = None
    insurance: list[PolicyView] | None = None
    labels: list[LabelView] | None = None
    risk: RiskView | None = None
    rules: RulesView | None = None
    version: int | None = Field(None, description="Events in the vintage's stream.")


class HistoryState(Answer):
    status: str
    exposure: Tonnes
    due: dict[str, Tonnes]
    outstanding_credits: Tonnes
    on_hold: Tonnes
    verification_due: Day | None
    period_end: Day


class HistoryEntry(Answer):
    version: int
    event: str = Field(description="The event's kind (Issued, ReversalRecorded, ...).")
    on: Day = Field(description="When it happened (business date).")
    recorded_at: Instant
    recorded_by: str | None = Field(description="Who recorded it (``token:NAME``, ``cli``).")
    data: dict[str, JsonValue] = Field(description="The event's own fields.")
    state: HistoryState = Field(description="The vintage after it.")


class History(Answer):
    vintage_id: str
    as_of: Day | None
    known_at: Instant | None
    events: list[HistoryEntry]


# ---------------------------------------------------------------------- registry (writes)


class Recorded(Answer):
    recorded_by: str = Field(description="The actor the audit trail names (``token:NAME``).")


class Issued(Recorded):
    vintage_id: str


class Verified(Recorded):
    verified: list[str] = Field(description="The vintages verified.")


class ProjectVerified(Verified):
    project: str


class ReversalRecorded(Recorded):
    vintage_id: str
    reversal_id: str
    classification: str


class Compensated(Recorded):
    vintage_id: str
    reversal_id: str
    due: dict[str, Tonnes] = Field(description="What the vintage has due after it.")


class Retired(Recorded):
    vintage_id: str
    retired: Tonnes


class Cancelled(Recorded):
    vintage_id: str
    quantity: Tonnes
    invalidation: bool


class KindCounts(Answer):
    read: int
    imported: int
    duplicates: int
    rejected: int


class Reject(Answer):
    line: int | None
    reason: str
    raw: str | None


class Imported(Recorded):
    """An import's summary, as ``permanence import --json`` prints it."""

    format: str
    file: str
    program: str
    read: int
    imported: int
    duplicates: int
    rejected: int
    skipped: int
    unreadable: int
    kinds: dict[str, KindCounts]
    totals: dict[str, Tonnes]
    file_totals: dict[str, Tonnes]
    non_reversible_issued: Tonnes
    verifications_implied: int
    reconciliation: dict[str, dict[str, Tonnes]]
    unexplained: dict[str, Tonnes]
    findings: list[str]
    rejects_file: str | None
    rejects: list[Reject] = Field(description="The first rejected rows with their reason.")


# ---------------------------------------------------------------------- operations


class AnswerCounters(Answer):
    hits: int
    misses: int
    shared: int
    evictions: int
    entries: int
    bytes: int
    hit_ratio: float


class Health(Answer):
    """Liveness. 503 answers carry this report too: ``unavailable`` (the store does not
    answer, ``detail`` says why) or ``degraded`` (events the read models could not take)."""

    status: str = Field(description="ok, degraded or unavailable.")
    store: str | None = None
    projection_lag: int | None = None
    answers: AnswerCounters | None = None
    projection_failures: list[dict[str, JsonValue]] | None = None
    detail: str | None = None


__all__ = [
    "AnswerCounters", "Buffer", "BufferRow", "Cancelled", "Compensated", "Figures", "Health",
    "History", "HistoryEntry", "HistoryState", "Imported", "Issued", "KindCounts", "LabelView",
    "Liabilities", "PolicyView", "PoolRow", "ProfileSummary", "ProjectRow", "ProjectVerified",
    "Recorded", "Reject", "Retired", "ReversalRecorded", "ReversalView", "RiskView", "RulesView",
    "Runoff", "RunoffYear", "TransferView", "Verified", "Vintage", "VintagePage", "VintageRow",
]
