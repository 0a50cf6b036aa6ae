"""Listings over the read model: which vintages, projects and pools the ledger holds.

Users need to find a vintage before they can ask about it; these answer from
``proj_vintages`` alone (one indexed query each, never a replay). Vintages come in pages
ordered by ``issued_nid`` (the table's primary key), with a keyset cursor: a page never
repeats or skips a row however many vintages are issued meanwhile.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, and_, func, select
from sqlalchemy.sql import ColumnElement

from projections.tables import vintages

STATUSES: tuple[str, ...] = ("monitored", "lapsed", "transferred", "ended", "non-reversible")
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


class ListingError(ValueError):
    """A listing's arguments are malformed (the faces map it to their usage error)."""


@dataclass(frozen=True)
class VintageFilters:
    """Which vintages a listing shows; ``None`` means any."""

    program: str | None = None
    project: str | None = None
    pool: str | None = None
    status: str | None = None
    label: str | None = None
    as_of: date | None = None


def encode_cursor(issued_nid: int) -> str:
    """The cursor after a row: its key as text (opaque to callers, stable across runs)."""
    return str(issued_nid)


def decode_cursor(cursor: str | None) -> int:
    """The key a page starts after; 0 (before any row) when there is no cursor."""
    if cursor is None or cursor == "":
        return 0
    text = cursor.strip()
    if not text.isdigit() or len(text) > 19:
        raise ListingError(f"cursor: {cursor!r} is not a cursor from a previous page")
    return int(text)


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ListingError(f"limit: {limit} is not between 1 and {MAX_LIMIT}")
    return limit


def check_status(status: str | None) -> str | None:
    if status is not None and status not in STATUSES:
        raise ListingError(f"status: {status!r} is not one of {', '.join(STATUSES)}")
    return status


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(filters: VintageFilters) -> list[ColumnElement[bool]]:
    c = vintages.c
    conds: list[ColumnElement[bool]] = []
    for column, value in (("program", filters.program), ("project", filters.project),
                          ("pool", filters.pool), ("status", check_status(filters.status))):
        if value is not None:
            conds.append(c[column] == value)
    if filters.label is not None:
        # labels are stored as JSON text by the projector: match the exact encoded pair
        needle = f'"label": {json.dumps(filters.label)}'
        conds.append(c.labels.like(f"%{_like_escape(needle)}%", escape="\\"))
    if filters.as_of is not None:
        conds.append(c.issued_on <= filters.as_of.isoformat())
    return conds


def _vintage_row(row: Any) -> dict[str, Any]:
    labels = json.loads(row.labels) if row.labels else []
    return {
        "vintage_id": row.vintage_id,
        "program": row.program,
        "pool": row.pool,
        "project": row.project,
        "vintage_year": row.vintage_year or None,
        "quantity": int(row.quantity),
        "buffer": int(row.buffer),
        "issued_on": row.issued_on,
        "period_end": row.period_end,
        "status": row.status,
        "reversible": bool(row.reversible),
        "labels": [item["label"] for item in labels],
    }


def list_vintages(
    engine: Engine,
    filters: VintageFilters = VintageFilters(),
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> dict[str, Any]:
    """One page of vintages in issuance order, and the cursor of the next page (``None``
    on the last one). One more row than asked tells whether another page exists."""
    check_limit(limit)
    after = decode_cursor(cursor)
    c = vintages.c
    stmt = (
        select(c.vintage_id, c.program, c.pool, c.project, c.vintage_year, c.quantity,
               c.buffer, c.issued_on, c.period_end, c.status, c.reversible, c.labels,
               c.issued_nid)
        .where(and_(c.issued_nid > after, *_conditions(filters)))
        .order_by(c.issued_nid)
        .limit(limit + 1)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(stmt))
    page = rows[:limit]
    more = len(rows) > limit
    return {
        "vintages": [_vintage_row(r) for r in page],
        "next_cursor": encode_cursor(int(page[-1].issued_nid)) if more and page else None,
    }


def list_projects(engine: Engine) -> list[dict[str, Any]]:
    """Each project with its number of vintages and the credits issued to it."""
    c = vintages.c
    stmt = (
        select(c.project, func.count().label("n"), func.sum(c.quantity).label("issued"))
        .group_by(c.project)
        .order_by(c.project)
    )
    with engine.connect() as conn:
        return [{"project": r.project, "vintages": int(r.n), "issued": int(r.issued or 0)}
                for r in conn.execute(stmt)]


def list_pools(engine: Engine) -> list[dict[str, Any]]:
    """Each pool with its number of vintages and the buffer contributed at issuance."""
    c = vintages.c
    stmt = (
        select(c.pool, func.count().label("n"), func.sum(c.buffer).label("contributions"))
        .group_by(c.pool)
        .order_by(c.pool)
    )
    with engine.connect() as conn:
        return [{"pool": r.pool, "vintages": int(r.n),
                 "contributions": int(r.contributions or 0)} for r in conn.execute(stmt)]


def vintage_ids_with_prefix(engine: Engine, prefix: str, limit: int) -> list[str]:
    """Up to ``limit`` vintage ids starting with ``prefix`` (lower-case hex and hyphens).

    A range on the unique ``vintage_id`` index rather than ``LIKE``, which PostgreSQL can
    only serve from an index under the C collation; the bound is the prefix with its last
    character moved one up, and the check in Python guards collations that skip hyphens.
    """
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    c = vintages.c
    stmt = (
        select(c.vintage_id)
        .where(and_(c.vintage_id >= prefix, c.vintage_id < upper))
        .order_by(c.vintage_id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(stmt) if r[0].startswith(prefix)]
