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
from datetime import date
from pathlib import Path

from .cells import (
    CellError,
    Row,
    read_rows,
    short_us_date,
    us_date,
    us_or_iso_date,
    whole_number,
)
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
REDUCED = "Date Invalidation Period Reduced"

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

_NUMBER = r"\d[\d,]*"
_DATE_TEXT = r"\d{1,2}/\d{1,2}/\d{2,4}|[A-Z][a-z]+\.?\s+\d{1,2},?\s+\d{4}"
_KEY = r"[A-Z]{2,}\d+(?:-[A-Z0-9]+)*"

RETIREMENT_CLAUSE = re.compile(
    rf"(?:\bon\s+(?P<date>{_DATE_TEXT}),?\s+)?"
    r"(?:CARB\s+)?retired\s+"
    rf"(?:(?P<all>all)\s+(?:of\s+)?(?:the\s+)?|(?P<remaining>the\s+remaining)\s+)?"
    rf"(?P<quantity>{_NUMBER})"
    rf"(?:\s+(?:of|out\s+of)\s+(?:the\s+)?(?P<of>{_NUMBER}))?"
    r"(?:\s+(?:remaining|ARB|offset|buffer))*\s+credits?"
    r"(?:\s+(?:from|in)\s+the\s+(?:forest\s+)?buffer\s+(?:pool|account))?"
    r"\s+(?:for|to\s+(?:cover|compensate(?:\s+for)?))\s+(?:the\s+)?"
    rf"(?P<key>{_KEY})",
    re.IGNORECASE,
)
"""One buffer-retirement clause of a ``Comment``: "On 9/12/2017, CARB retired 178,642 of
415,479 credits from the buffer pool for the CAFR5076-A unintentional reversal", "retired all
28,352 credits ...", "retired the remaining 236,837 credits ...". The date is optional (a clause
without one takes the previous clause's date in the same comment); sentences about voluntary or
compliance retirements name no reversal and do not match."""

_MONTHS = {
    name: n
    for n, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


def comment_date(text: str) -> date | None:
    """``9/12/2017``, ``9/12/17`` or ``September 12, 2017`` as a date, else None."""
    text = " ".join(text.replace(",", " ").replace(".", " ").split())
    if "/" in text:
        return us_date(text) or short_us_date(text, None)
    month, day, year = (text.split(" ") + ["", "", ""])[:3]
    number = _MONTHS.get(month[:3].lower())
    if number is None or not day.isdigit() or not year.isdigit():
        return None
    try:
        return date(int(year), number, int(day))
    except ValueError:
        return None


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
            vintage_year=row.optional_year("Vintage"),
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
            reversible_stated="forest" in (project_type or "").lower(),
            verifier=row.text("Verification Body"),
            verified_on=row.optional_day(REDUCED, us_or_iso_date, _DATE),
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
    """The ``Buffer Pool Retired`` column as retirements, told apart by the comment.

    The column is the quantity, whatever the comment says, so the pool always reconciles:
    clauses that add up to it are taken as they are; clauses that state more are cut from the
    last; a part no clause accounts for (or a comment no clause can be read in) is one record
    with ``for_reversal`` None and ``unread`` saying why, which the importer records as a pool
    cancellation dated conservatively.
    """
    retired = row.optional_whole(BUFFER_RETIRED) or 0
    if retired == 0:
        return []  # a comment without the column may describe anything; only the column counts
    key = _require_issuance_id(issuance_id, BUFFER_RETIRED, retired)
    if "forest" not in (row.text(PROJECT_TYPE) or "").lower():
        raise CellError(
            f"column {BUFFER_RETIRED!r} is {retired} on a {row.text(PROJECT_TYPE)!r} project; "
            "only Forest projects draw on the Forest Buffer Account"
        )
    comment = row.text(COMMENT) or ""
    records: list[BufferRetirementRecord] = []
    left = retired
    on: date | None = None
    for clause in RETIREMENT_CLAUSE.finditer(comment):
        if clause["date"] is not None:
            on = comment_date(clause["date"])
            if on is None:
                raise CellError(f"column {COMMENT!r}: {clause['date']!r} is not a date")
        stated = whole_number(clause["quantity"]) or 0
        take = min(stated, left)
        if take > 0:
            records.append(BufferRetirementRecord(row.line, PROGRAM, key, on, take, clause["key"]))
            left -= take
    if left:
        said = retired - left
        why = (
            f"column {COMMENT!r} names no reversal for {left} of the {retired} credits in "
            f"column {BUFFER_RETIRED!r}"
            + (f" (its clauses account for {said})" if records else f": {comment[:120]!r}")
        )
        records.append(BufferRetirementRecord(row.line, PROGRAM, key, None, left, None, why))
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
