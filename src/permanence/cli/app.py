"""The ``permanence`` command line: a thin face over the application and the queries.

It parses text into values, calls one application method or query, and prints the result
readably or as JSON (``--json``). Malformed input exits 2, a rejected command exits 1;
either way one line names the problem and nothing is written.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, TypeVar

import typer
from eventsourcing.persistence import PersistenceError
from sqlalchemy.exc import SQLAlchemyError

from ledger.errors import LedgerError
from permanence.config import ConfigError, Settings
from permanence.parsing import (
    UsageError,
    to_date,
)
from permanence.runtime import LedgerNotFound, Runtime

T = TypeVar("T")

app = typer.Typer(
    name="permanence",
    help="Event-sourced monitoring of carbon-credit permanence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
projections_app = typer.Typer(help="Read-model maintenance.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")

JSON = typer.Option(False, "--json", help="Print JSON.")
AS_OF = typer.Option(None, "--as-of", help="Business date YYYY-MM-DD (default today).")
PLOT = typer.Option(None, "--plot", help="Write the run-off ladder as PNG.")
KNOWN_AT = typer.Option(None, "--known-at", help="Only what had been recorded by this time.")


class State:
    db: str | None = None
    command: str | None = None


_state = State()


@app.callback()
def main_options(
    ctx: typer.Context,
    db: str = typer.Option(None, "--db", envvar="PERMANENCE_DB", help="SQLite path or postgresql:// URL."),
) -> None:
    _state.db = db
    _state.command = ctx.invoked_subcommand


def settings() -> Settings:
    return Settings(db=_state.db) if _state.db else Settings()


CREATING_COMMANDS = frozenset({"issue", "import"})
"""Commands that may create a ledger; every other command refuses a store holding none."""


@contextmanager
def runtime(create: bool | None = None) -> Iterator[Runtime]:
    """The runtime of a command; only :data:`CREATING_COMMANDS` create a missing ledger."""
    if create is None:
        create = _state.command in CREATING_COMMANDS
    rt = Runtime(settings(), create=create)
    try:
        with rt.app.acting_as(rt.settings.actor or "cli"):
            yield rt
    finally:
        if rt.behind is not None:
            typer.echo(f"warning: recorded, but the read models are behind ({rt.behind}); "
                       "`permanence projections status` tells more", err=True)
        rt.close()


def fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], T]) -> T:
    """Run a command body, turning known errors into one line and an exit code."""
    try:
        return fn()
    except (UsageError, ConfigError) as e:
        fail(str(e), 2)
    except (LedgerError, LedgerNotFound) as e:
        fail(str(e), 1)
    except (PersistenceError, SQLAlchemyError, sqlite3.Error) as e:
        # a locked, read-only or unreachable store: one line, and the transaction rolled back
        fail(f"database: {database_problem(e)}", 1)
    raise AssertionError("unreachable")


def database_problem(error: BaseException) -> str:
    """The first line of a store's error, naming the setting when a lock wait timed out."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "lock timeout" in first:
        first += " (PERMANENCE_LOCK_TIMEOUT_SECONDS)"
    return first


def emit(data: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    else:
        typer.echo(human(data) if human else _plain(data))


def due_text(due: dict[str, int]) -> str:
    """``due pool 4,000, proponent 500``, or ``nothing due``: the obligors that owe."""
    owing = [f"{k} {v:,}" for k, v in due.items() if v]
    return "due " + ", ".join(owing) if owing else "nothing due"


def _plain(data: Any, indent: int = 0) -> str:
    pad = "  " * indent
    if isinstance(data, dict):
        lines = []
        for k, v in data.items():
            if isinstance(v, (dict, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(_plain(v, indent + 1))
            elif isinstance(v, int) and ("year" in k or k == "version"):
                lines.append(f"{pad}{k}: {v}")
            else:
                lines.append(f"{pad}{k}: {_fmt(v)}")
        return "\n".join(lines)
    if isinstance(data, list):
        return "\n".join(
            (f"{pad}-\n{_plain(x, indent + 1)}" if isinstance(x, (dict, list)) else f"{pad}- {_fmt(x)}")
            for x in data
        )
    return f"{pad}{_fmt(data)}"


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return {True: "yes", False: "no", None: "-"}[v]
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def today() -> date:
    """The business date: ``PERMANENCE_TODAY`` when set, else the machine's date."""
    return settings().today_source()()


def required_date(text: str, field: str) -> date:
    value = to_date(text, field)
    assert value is not None
    return value
