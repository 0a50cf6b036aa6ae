"""``permanence vintages``: find vintages (and their short ids) without knowing them first.

Every other command takes a vintage id; this is where a user finds one. The table prints
the first 8 characters of each id, which any command accepts as a unique prefix.
"""

from __future__ import annotations

from typing import Any

import typer

from permanence.cli.app import JSON, app, emit, guarded, runtime
from permanence.parsing import UsageError, to_date

SHORT_ID = 8
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "vintage_id"), ("program", "program"), ("pool", "pool"), ("project", "project"),
    ("year", "vintage_year"), ("quantity", "quantity"), ("buffer", "buffer"),
    ("issued", "issued_on"), ("period end", "period_end"), ("status", "status"),
    ("labels", "labels"),
)
NUMERIC = frozenset({"vintage_year", "quantity", "buffer"})


def _cell(key: str, value: Any) -> str:
    if key == "vintage_id":
        return str(value)[:SHORT_ID]
    if key == "labels":
        return ",".join(value) or "-"
    if value is None:
        return "-"
    if key in ("quantity", "buffer"):
        return f"{value:,}"
    return str(value)


def vintages_table(data: dict[str, Any]) -> str:
    """An aligned table (numbers right-aligned), then how to get the next page."""
    rows = data["vintages"]
    if not rows:
        return "no vintages"
    cells = [[h for h, _ in COLUMNS]] + [[_cell(k, r[k]) for _, k in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.rjust(w) if k in NUMERIC else c.ljust(w)
                  for c, w, (_, k) in zip(row, widths, COLUMNS, strict=True)).rstrip()
        for row in cells
    ]
    if data["next_cursor"] is not None:
        lines.append(f"more: --cursor {data['next_cursor']}")
    return "\n".join(lines)


@app.command("vintages")
def vintages(
    program: str = typer.Option(None, help="Only this program."),
    project: str = typer.Option(None, help="Only this project."),
    pool: str = typer.Option(None, help="Only this pool."),
    status: str = typer.Option(
        None, help="Only this status: monitored|lapsed|transferred|ended|non-reversible."),
    label: str = typer.Option(None, help="Only vintages carrying this label (e.g. CCP-I)."),
    as_of: str = typer.Option(None, "--as-of", help="Only vintages issued on or before this date."),
    limit: int = typer.Option(50, "--limit", help="Vintages per page (1-1000)."),
    cursor: str = typer.Option(None, "--cursor", help="The next page's cursor, from a previous page."),
    as_json: bool = JSON,
) -> None:
    """List vintages in issuance order, a page at a time; ids shortened to 8 characters."""
    from projections.listings import ListingError, VintageFilters, list_vintages

    def body() -> None:
        filters = VintageFilters(program, project, pool, status, label, to_date(as_of, "as-of"))
        with runtime() as rt:
            try:
                data = list_vintages(rt.engine, filters, limit, cursor)
            except ListingError as e:
                raise UsageError(str(e)) from None
        emit(data, as_json, vintages_table)

    guarded(body)

