"""``permanence vintages``: find vintages (and their short ids) without knowing them first.

Every other command takes a vintage id; this is where a user finds one. The table prints
the first 8 characters of each id, which any command accepts as a unique prefix.
"""

from __future__ import annotations

from typing import Any

import typer

from permanence.cli.app import JSON, app, reader
from permanence.cli.choices import VintageStatus
from permanence.cli.errors import exits
from permanence.cli.output import Human, emit, table
from permanence.parsing import to_date

SHORT_ID = 8
COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "vintage_id"), ("program", "program"), ("pool", "pool"), ("project", "project"),
    ("year", "vintage_year"), ("quantity", "quantity"), ("buffer", "buffer"),
    ("issued", "issued_on"), ("period end", "period_end"), ("status", "status"),
    ("labels", "labels"),
)
NUMERIC = frozenset({"vintage_year", "quantity", "buffer"})


def _cell(key: str, value: Any) -> Any:
    if key == "vintage_id":
        return str(value)[:SHORT_ID]
    if key == "labels":
        return ",".join(value) or "-"
    if key == "vintage_year" and value is not None:
        return str(value)
    return value


def vintages_table(data: dict[str, Any]) -> Human:
    """A table (numbers right-aligned), then how to get the next page."""
    rows = data["vintages"]
    if not rows:
        return "no vintages"
    parts: list[Any] = [table(
        [(h, "right" if k in NUMERIC else "left") for h, k in COLUMNS],
        ([_cell(k, r[k]) for _, k in COLUMNS] for r in rows))]
    if data["next_cursor"] is not None:
        parts.append(f"more: --cursor {data['next_cursor']}")
    return parts


STATUS = typer.Option(None, "--status", help="Only vintages in this status.")


@app.command("vintages")
@exits
def vintages(
    program: str = typer.Option(None, help="Only this program."),
    project: str = typer.Option(None, help="Only this project."),
    pool: str = typer.Option(None, help="Only this pool."),
    status: VintageStatus = STATUS,
    label: str = typer.Option(None, help="Only vintages carrying this label (e.g. CCP-I)."),
    as_of: str = typer.Option(None, "--as-of", metavar="DATE",
                              help="Only vintages issued on or before this date."),
    limit: int = typer.Option(50, "--limit", help="Vintages per page (1-1000)."),
    cursor: str = typer.Option(None, "--cursor", help="The next page's cursor, from a previous page."),
    as_json: bool = JSON,
) -> None:
    """List vintages in issuance order, a page at a time; ids shortened to 8 characters."""
    from projections.listings import VintageFilters, list_vintages

    filters = VintageFilters(program, project, pool, status.value if status else None, label,
                             to_date(as_of, "as-of"))
    with reader() as engine:
        data = list_vintages(engine, filters, limit, cursor)
    emit(data, as_json, vintages_table)
