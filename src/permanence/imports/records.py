"""What the registry-export parsers yield: one plain, frozen record per fact read from a row.

The parsers never touch the ledger; another layer turns these records into commands. Records
carry only plain types (str, int, date, bool, None) so that they can be compared in tests,
logged, and serialised without the importer knowing anything about the ledger.

Conventions shared by every format:

- ``line`` is the 1-based physical line of the file where the row starts (the header is line 1;
  a quoted cell that spans lines pushes later rows down accordingly).
- ``program`` is the program-profile name (``acr``, ``car-forest``, ``art-trees``,
  ``verra-vcs``, ``gold-standard``, ``isometric``, ``carb-forest``), fixed per format.
- ``source_key`` is the source's own key for the issuance the record is about; each format
  module's docstring says how it is formed. Re-importing the same file gives the same keys.
- Quantities are whole tonnes, never negative; text cells are kept verbatim (stripped), and a
  cell that starts with ``=``, ``+``, ``-`` or ``@`` is just text: nothing here evaluates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class IssuanceRecord:
    """One issuance of credits to one project for one vintage (the start of a vintage stream).

    ``vintage_start``/``vintage_end`` are the period the file states for the credits (ACR and
    CARB reporting period, Verra vintage period, Gold Standard monitoring period); they may
    span more than ``vintage_year``. ``total`` is the total exactly as the file states it (None
    when the file has no total column); where a format has project, buffer and total columns
    the parser has already checked ``quantity + buffer == total``.

    ``labels`` are short tags the source states about the credits: the name of a Yes/No column
    that says Yes (e.g. ``"CCP Approved"``, ``"Verified Removal"``), or the entries of a
    label/certification list column (Gold Standard ``Label``, Verra ``Additional
    Certifications``), verbatim.

    ``buffer_transferred`` (ACR only, 0 elsewhere): the part of ``buffer`` the file says was
    *transferred* into the buffer pool for this issuance (ACR ``Credits Transferred to Buffer
    Pool``) rather than issued straight into it. It counts in the vintage's buffer contribution
    (``buffer`` = issued to the buffer + transferred) but not in ``total``, which the file
    states as project + issued to the buffer; so for ACR ``quantity + buffer - buffer_transferred
    == total``.
    """

    line: int
    program: str
    source_key: str
    project: str
    project_name: str | None
    vintage_year: int | None
    vintage_start: date | None
    vintage_end: date | None
    issued_on: date
    quantity: int
    buffer: int
    total: int | None
    serial_first: str | None
    serial_last: str | None
    serial_prefix: str | None
    crediting_start: date | None
    country: str | None
    project_type: str | None
    corresponding_adjustment: str | None
    authorization: str | None
    labels: tuple[str, ...] = ()
    buffer_transferred: int = 0
    #: The methodology or protocol as stated (the importer maps it, with ``project_type``,
    #: to whether the credits can reverse).
    methodology: str | None = None
    #: What the source itself says about reversibility (CAR ``Reversible/Non-Reversible``),
    #: None when it says nothing; it wins over any mapping.
    reversible_stated: bool | None = None
    #: The verification body the source names for this issuance, verbatim.
    verifier: str | None = None
    #: A verification date the source states for this issuance (CARB ``Date Invalidation
    #: Period Reduced``: a second verification), None when it states none.
    verified_on: date | None = None


@dataclass(frozen=True, slots=True)
class ReversalRecord:
    """A reversal stated by the source (CARB ``Intentional``/``Unintentional Reversal``).

    ``quantity`` is positive although the file writes it negative. ``source_key`` is the
    reversal's own key (see :mod:`permanence.imports.carb`), the one that
    :class:`BufferRetirementRecord.for_reversal` refers to. ``comment`` is the row's free text
    verbatim (None when empty): the only place the table may name a cause.
    """

    line: int
    program: str
    source_key: str
    project: str
    on: date
    quantity: int
    intentional: bool
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class BufferRetirementRecord:
    """Buffer credits of one issuance retired to compensate one (unintentional) reversal.

    ``source_key`` is the issuance whose buffer contribution was drawn on; ``for_reversal`` is
    the reversal's key as the source's free text names it (e.g. ``"CAFR5076-A"``), None when
    the text names none; ``on`` is the retirement date when the text gives one.
    """

    line: int
    program: str
    source_key: str
    on: date | None
    quantity: int
    for_reversal: str | None
    #: Why the comment could not say which reversal or when (None when it could): the
    #: retirement is still recorded, as a pool cancellation, and the reason is a finding.
    unread: str | None = None


@dataclass(frozen=True, slots=True)
class SurrenderRecord:
    """Credits of issuance ``source_key`` surrendered by the operator of ``project`` to
    compensate its own intentional reversal (CARB ``Retired for Intentional Reversal``)."""

    line: int
    program: str
    source_key: str
    project: str
    quantity: int


@dataclass(frozen=True, slots=True)
class InvalidationRecord:
    """Credits of issuance ``source_key`` invalidated or canceled after issuance."""

    line: int
    program: str
    source_key: str
    quantity: int


@dataclass(frozen=True, slots=True)
class RetirementRecord:
    """Credits of issuance ``source_key`` retired (or cancelled) on ``on``, e.g. a Verra block
    with a ``Retirement/Cancellation Date``; ``beneficiary`` as stated, None when empty."""

    line: int
    program: str
    source_key: str
    on: date
    quantity: int
    beneficiary: str | None


@dataclass(frozen=True, slots=True)
class CreditRecord:
    """Credits of one project's vintage retired or cancelled on ``on`` (ACR and CAR
    retirement and cancellation exports).

    ``source_key`` is the issuance's key when the export states enough to form it (ACR:
    issuance date-time, vintage and period); otherwise None, and the importer finds the
    project's vintages of ``vintage_year`` issued on or before ``on``. ``action`` is
    ``retire`` (the credits must stay permanent) or ``cancel`` (the credits leave the program
    and its exposure, e.g. CAR's "Canceled for ARB Compliance"). ``serials`` as stated.
    """

    line: int
    program: str
    source_key: str | None
    project: str
    vintage_year: int | None
    on: date
    quantity: int
    action: str
    reason: str | None
    serials: str | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """A row, or one part of a row, that could not be read faithfully.

    ``reason`` starts with ``line N:`` and names the column and the problem, so it can be shown
    to a user as is; ``raw`` is the row re-serialised as one CSV line.
    """

    line: int
    reason: str
    raw: str


@dataclass(frozen=True, slots=True)
class Skipped:
    """A well-formed row that legitimately states no issuance (e.g. a zero-credit reporting
    period or a retired Gold Standard block): counted, not rejected, so totals still reconcile."""

    line: int
    reason: str


Record = (
    IssuanceRecord
    | ReversalRecord
    | BufferRetirementRecord
    | SurrenderRecord
    | InvalidationRecord
    | RetirementRecord
    | CreditRecord
)
"""A fact to hand to the ledger."""

ParseResult = Record | Rejected | Skipped
"""Anything a parser yields."""
