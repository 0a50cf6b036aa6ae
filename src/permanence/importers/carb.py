"""California Air Resources Board "ARB Offset Credit Issuance" table (see the shared
``carb-arboc-format.md``), the only format here that states reversals and compensations.

One row can yield several records, each read independently (a bad part is one
:class:`Rejected` for that row and does not stop the other parts):

- **issuance** (``ARB Offset Credits Issued`` or ``Forest Buffer Account Contribution`` > 0):
  :class:`IssuanceRecord` with ``quantity`` = credits issued, ``buffer`` = Forest Buffer Account
  contribution (only rows whose ``Project Type`` is a Forest type may have one), ``total`` = None,
  ``source_key`` = ``CARB Issuance ID``; ``vintage_start``/``vintage_end`` = reporting period.
  ``reforest defer`` in the credits column means nothing was issued yet.
- **reversal** (negative ``Unintentional`` / ``Intentional Reversal``): :class:`ReversalRecord`
  with the quantity made positive, dated ``Reporting Period End Date`` (the reversal happened in
  that period; the table gives no other date) or, failing that, ``Issuance Date``; the row's
  ``Comment`` is carried verbatim (the importer reads a cause from it).
- **buffer retirement** (``Buffer Pool Retired`` > 0 on an issuance row): one
  :class:`BufferRetirementRecord` per sentence of ``Comment`` such as "On 9/12/2017, CARB retired
  178,642 of 415,479 credits from the buffer pool for the CAFR5076-A unintentional reversal". The
  sentences must add up to the column; if they don't, or none can be read, that part is one
  Rejected and no retirement of the row is emitted (half a compensation would be worse).
- **surrender** (``Retired for Intentional Reversal`` > 0): :class:`SurrenderRecord`.
- **invalidation** (``Invalidated or Canceled`` > 0): :class:`InvalidationRecord`.

A row with none of these (a zero-credit period) is :class:`Skipped`. Ordinary retirements
(``Retired Voluntarily``, compliance periods, Quebec) do not change permanence and are not read.

**Reversal keys.** CARB's comments name a reversal ``<CARB Project ID>-<letter>`` (``CAFR5076-A``)
while the reversal row itself usually has no ``CARB Issuance ID``. So a reversal's
``source_key`` is the row's ``CARB Issuance ID`` when it has one, and otherwise the project id, a
hyphen and the letter counting that project's reversal rows in file order: ``A`` for its first
(the shared format example's CAFR9002 reversal is ``CAFR9002-A``), ``B`` for its second, ..., ``Z``,
``AA``. The table is published sorted by project and reporting period, so the letters are stable
across re-imports of the table. If one row holds both kinds, the unintentional reversal (the one
buffer retirements compensate) keeps the key and the intentional one gets ``-intentional`` added.
A comment key this scheme cannot produce (the format note's ``CAFR5224-A-B``) is still carried
verbatim in ``for_reversal``; matching it is the importer's call.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from .cells import CellError, Row, read_rows, us_date, us_or_iso_date, whole_number
from .records import (
    BufferRetirementRecord,
    InvalidationRecord,
    IssuanceRecord,
    ParseResult,
    Rejected,
    ReversalRecord,
    Skipped,
    SurrenderRecord,
)

FORMAT = "carb"
PROGRAM = "carb-forest"

PROJECT = "CARB Project ID"
PROJECT_TYPE = "Project Type"
RP_START = "Reporting Period Start Date"
RP_END = "Reporting Period End Date"
ISSUED = "ARB Offset Credits Issued"
BUFFER = "Forest Buffer Account Contribution"
ISSUE_DATE = "Issuance Date"
INTENTIONAL = "Intentional Reversal"
UNINTENTIONAL = "Unintentional Reversal"
ISSUANCE_ID = "CARB Issuance ID"
INVALIDATED = "Invalidated or Canceled"
BUFFER_RETIRED = "Buffer Pool Retired"
SURRENDERED = "Retired for Intentional Reversal"
COMMENT = "Comment"

REQUIRED = (
    PROJECT,
    PROJECT_TYPE,
    RP_START,
    RP_END,
    "Vintage",
    ISSUED,
    BUFFER,
    ISSUE_DATE,
    INTENTIONAL,
    UNINTENTIONAL,
    ISSUANCE_ID,
    INVALIDATED,
    BUFFER_RETIRED,
    SURRENDERED,
    COMMENT,
)

_DATE = "YYYY-MM-DD or M/D/YYYY"
_DEFERRED = "reforest defer"

RETIREMENT_SENTENCE = re.compile(
    r"(?:\bon\s+(?P<date>\d{1,2}/\d{1,2}/\d{4}),?\s+)?"
    r"CARB\s+retired\s+(?:the\s+remaining\s+)?(?P<quantity>\d[\d,]*)"
    r"(?:\s+of\s+(?:the\s+)?\d[\d,]*)?"
    r"\s+(?:ARB\s+offset\s+)?credits?\s+from\s+the\s+(?:forest\s+)?buffer\s+(?:pool|account)"
    r"\s+for\s+the\s+(?P<key>[A-Z]{2,}\d+(?:-[A-Z0-9]+)*)"
    r"(?:\s+(?:un)?intentional)?\s+reversal",
    re.IGNORECASE,
)
"""One retirement clause of a ``Comment``; the date is optional, ``of N`` is not checked."""


def parse(path: Path) -> Iterator[ParseResult]:
    """Stream the table's rows as records (several per row where the row says several things)."""
    reversal_rows: dict[str, int] = {}
    for row in read_rows(Path(path), fmt=FORMAT, required=REQUIRED):
        if isinstance(row, Rejected):
            yield row
        else:
            yield from _read(row, reversal_rows)


def reversal_letters(ordinal: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: spreadsheet-style letters, so keys never run out."""
    letters = ""
    ordinal += 1
    while ordinal:
        ordinal, rest = divmod(ordinal - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _read(row: Row, reversal_rows: dict[str, int]) -> list[ParseResult]:
    project = row.text(PROJECT)
    if project is None:
        return [row.reject(f"column {PROJECT!r} is empty")]
    issuance_id = row.text(ISSUANCE_ID)
    results: list[ParseResult] = []
    try:
        results.extend(_issuance(row, project, issuance_id))
    except CellError as exc:
        results.append(row.reject(str(exc)))
    try:
        results.extend(_reversals(row, project, issuance_id, reversal_rows))
    except CellError as exc:
        results.append(row.reject(str(exc)))
    for part in (_buffer_retirements, _surrender, _invalidation):
        try:
            results.extend(part(row, project, issuance_id))
        except CellError as exc:
            results.append(row.reject(str(exc)))
    if not results:
        reason = "no credits issued and no reversal, buffer retirement, surrender or invalidation"
        if (row.text(ISSUED) or "").lower() == _DEFERRED:
            reason += f" (column {ISSUED!r} is {_DEFERRED!r})"
        results.append(Skipped(row.line, reason))
    return results


def _require_issuance_id(issuance_id: str | None, column: str, quantity: int) -> str:
    if issuance_id is None:
        raise CellError(
            f"column {column!r} is {quantity} but column {ISSUANCE_ID!r} is empty: "
            "no issuance to attach it to"
        )
    return issuance_id


def _issuance(row: Row, project: str, issuance_id: str | None) -> list[ParseResult]:
    deferred = (row.text(ISSUED) or "").lower() == _DEFERRED
    quantity = 0 if deferred else row.optional_whole(ISSUED) or 0
    buffer = row.optional_whole(BUFFER) or 0
    if quantity == 0 and buffer == 0:
        return []
    project_type = row.text(PROJECT_TYPE)
    if buffer and "forest" not in (project_type or "").lower():
        raise CellError(
            f"column {BUFFER!r} is {buffer} on a {project_type!r} project; "
            "only Forest projects contribute to the Forest Buffer Account"
        )
    if quantity:
        key = _require_issuance_id(issuance_id, ISSUED, quantity)
    else:
        key = _require_issuance_id(issuance_id, BUFFER, buffer)
    return [
        IssuanceRecord(
            line=row.line,
            program=PROGRAM,
            source_key=key,
            project=project,
            project_name=row.text("Offset Project Name"),
            vintage_year=row.optional_whole("Vintage"),
            vintage_start=row.optional_day(RP_START, us_or_iso_date, _DATE),
            vintage_end=row.optional_day(RP_END, us_or_iso_date, _DATE),
            issued_on=row.day(ISSUE_DATE, us_or_iso_date, _DATE),
            quantity=quantity,
            buffer=buffer,
            total=None,
            serial_first=None,
            serial_last=None,
            serial_prefix=None,
            crediting_start=None,
            country=None,
            project_type=project_type,
            corresponding_adjustment=None,
            authorization=None,
        )
    ]


def _states_reversal(text: str | None) -> bool:
    """A non-empty, non-zero cell (unreadable text counts, so that it is rejected, not lost)."""
    return text is not None and whole_number(text) != 0


def _reversals(
    row: Row, project: str, issuance_id: str | None, reversal_rows: dict[str, int]
) -> list[ParseResult]:
    kinds = [
        (column, intentional)
        for column, intentional in ((UNINTENTIONAL, False), (INTENTIONAL, True))
        if _states_reversal(row.text(column))
    ]
    if not kinds:
        return []
    ordinal = reversal_rows.get(project, 0)
    reversal_rows[project] = ordinal + 1
    key = issuance_id or f"{project}-{reversal_letters(ordinal)}"
    on = row.optional_day(RP_END, us_or_iso_date, _DATE) or row.optional_day(
        ISSUE_DATE, us_or_iso_date, _DATE
    )
    if on is None:
        raise CellError(f"reversal without a date: columns {RP_END!r} and {ISSUE_DATE!r} are empty")
    records: list[ParseResult] = []
    for column, intentional in kinds:
        value = row.whole(column, negative=True)
        if value > 0:
            raise CellError(
                f"column {column!r}: {row.text(column)!r} is positive; "
                "the table writes reversals as negative quantities"
            )
        records.append(
            ReversalRecord(
                line=row.line,
                program=PROGRAM,
                source_key=f"{key}-intentional" if intentional and len(kinds) == 2 else key,
                project=project,
                on=on,
                quantity=-value,
                intentional=intentional,
                comment=row.text(COMMENT),
            )
        )
    return records


def _buffer_retirements(row: Row, project: str, issuance_id: str | None) -> list[ParseResult]:
    retired = row.optional_whole(BUFFER_RETIRED) or 0
    if retired == 0:
        return []  # a comment without the column may describe anything; only the column counts
    key = _require_issuance_id(issuance_id, BUFFER_RETIRED, retired)
    comment = row.text(COMMENT) or ""
    sentences = list(RETIREMENT_SENTENCE.finditer(comment))
    if not sentences:
        raise CellError(
            f"column {BUFFER_RETIRED!r} is {retired} but column {COMMENT!r} does not say when "
            f"or for which reversal: {comment!r}"
        )
    records: list[BufferRetirementRecord] = []
    for sentence in sentences:
        quantity = whole_number(sentence["quantity"])
        if quantity is None:
            raise CellError(f"column {COMMENT!r}: {sentence['quantity']!r} is not a whole number")
        on = None
        if sentence["date"] is not None:
            on = us_date(sentence["date"])
            if on is None:
                raise CellError(f"column {COMMENT!r}: {sentence['date']!r} is not a date")
        records.append(
            BufferRetirementRecord(
                line=row.line,
                program=PROGRAM,
                source_key=key,
                on=on,
                quantity=quantity,
                for_reversal=sentence["key"],
            )
        )
    stated = sum(record.quantity for record in records)
    if stated != retired:
        parts = " + ".join(str(record.quantity) for record in records)
        raise CellError(
            f"column {COMMENT!r} accounts for {stated} buffer credits ({parts}) but column "
            f"{BUFFER_RETIRED!r} is {retired}"
        )
    return list(records)


def _surrender(row: Row, project: str, issuance_id: str | None) -> list[ParseResult]:
    quantity = row.optional_whole(SURRENDERED) or 0
    if quantity == 0:
        return []
    key = _require_issuance_id(issuance_id, SURRENDERED, quantity)
    return [SurrenderRecord(row.line, PROGRAM, key, project, quantity)]


def _invalidation(row: Row, project: str, issuance_id: str | None) -> list[ParseResult]:
    quantity = row.optional_whole(INVALIDATED) or 0
    if quantity == 0:
        return []
    key = _require_issuance_id(issuance_id, INVALIDATED, quantity)
    return [InvalidationRecord(row.line, PROGRAM, key, quantity)]
