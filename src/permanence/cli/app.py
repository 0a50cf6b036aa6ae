"""The Typer app, its global options and the runtime of a command.

Every command module registers its commands on :data:`app` (see :mod:`permanence.cli.main`).
This module imports nothing heavy: a command loads the store, the queries and rich when it
runs, so that ``permanence liabilities --json`` pays only for what it uses.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

# re-exported: the command modules import these from here
from permanence.cli.errors import (
    EXIT_CODES_HELP,
    EXIT_REFUSED,
    exits,
    fail,
    guarded,
    say_error,
    usage_problem,
)
from permanence.cli.options import AS_OF, JSON, KNOWN_AT, PLOT
from permanence.cli.output import due_text, emit
from permanence.parsing import UsageError, required_date, to_date

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from permanence.config import Settings
    from permanence.runtime import Runtime

GLOBAL_OPTIONS = ("--db",)
"""Options of the whole program, taken before or after the command's name."""


def hoist_global_options(args: Sequence[str]) -> list[str]:
    """``args`` with every global option (and its value) moved before the command, so that
    ``permanence liabilities --db x.db`` means ``permanence --db x.db liabilities``.
    Nothing after ``--`` moves."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg in GLOBAL_OPTIONS and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 2
            continue
        if arg.partition("=")[0] in GLOBAL_OPTIONS and "=" in arg:
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


#: what a text option's value is, in help (``--on DATE`` rather than ``--on <str>``)
METAVARS = {
    "--on": "DATE", "--as-of": "DATE", "--from": "DATE", "--since": "DATE",
    "--period-start": "DATE", "--period-end": "DATE", "--crediting-start": "DATE",
    "--crediting-end": "DATE", "--due-from": "DATE", "--due-to": "DATE",
    "--vintage": "ID", "--quantity": "TONNES", "--buffer": "TONNES",
    "--program": "PROGRAM", "--project": "PROJECT", "--pool": "POOL", "--vintage-year": "YEAR",
    "--serials": "FIRST-LAST",
}


def _name_values(command: Any) -> None:
    """Give the text options of ``command`` and its subcommands the metavars above."""
    for param in getattr(command, "params", []):
        descriptor = getattr(param, "type_descriptor", None)
        if (param.metavar is None and param.opts and param.opts[0] in METAVARS
                and getattr(descriptor, "annotation", None) is str):
            param.metavar = METAVARS[param.opts[0]]
    for sub in getattr(command, "commands", {}).values():
        _name_values(sub)


class PermanenceGroup(TyperGroup):
    """The root command: global options may follow the subcommand too, and a usage error
    (an unknown option, a bad choice, a missing value) is one line, as every error is."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_values(self)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        run = functools.partial(super().main, args=args, prog_name=prog_name,
                                complete_var=complete_var, standalone_mode=False,
                                windows_expand_args=windows_expand_args, **extra)
        if not standalone_mode:
            return run()
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        try:
            code = run()
        except NoArgsIsHelpError as e:  # `permanence` alone: the help, as click shows it
            e.show()
            sys.exit(e.exit_code)
        except ClickException as e:
            say_error(usage_problem(e))
            sys.exit(e.exit_code)
        except typer.Abort:
            say_error("aborted")
            sys.exit(EXIT_REFUSED)
        sys.exit(code if isinstance(code, int) else 0)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(args))

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """Each command with its whole summary, wrapped (click cuts it at the width)."""
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


HELP_EPILOG = (
    f"{EXIT_CODES_HELP}\n\n"
    "Global options (--db) may be given before or after the command. "
    "Every command takes -h/--help and --json."
)

app = typer.Typer(
    name="permanence",
    help="Event-sourced monitoring of carbon-credit permanence.",
    epilog=HELP_EPILOG,
    cls=PermanenceGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # typer's rich help renders a type column for every option, flags included (so a flag
    # read as "--negligence <bool>"); click's formatter shows a flag as a flag
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
projections_app = typer.Typer(
    help="Read-model maintenance.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(projections_app, name="projections")


class State:
    db: str | None = None
    command: str | None = None


_state = State()


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    try:
        number = version("permanence")
    except PackageNotFoundError:  # run from a source tree that was never installed
        number = "unknown (not installed)"
    typer.echo(f"permanence {number}")
    raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    db: str = typer.Option(
        None, "--db", envvar="PERMANENCE_DB", metavar="PATH|URL",
        help="SQLite file or postgresql:// URL (default ./permanence.db).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    _state.db = db
    _state.command = ctx.invoked_subcommand


def settings() -> Settings:
    from permanence.config import Settings

    return Settings(db=_state.db) if _state.db else Settings()


CREATING_COMMANDS = frozenset({"issue", "import"})
"""Commands that may create a ledger; every other command refuses a store holding none."""


@contextmanager
def runtime(create: bool | None = None) -> Iterator[Runtime]:
    """The runtime of a command; only :data:`CREATING_COMMANDS` create a missing ledger."""
    from permanence.runtime import Runtime

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


@contextmanager
def reader() -> Iterator[Engine]:
    """The engine of a command that only reads the read models (see
    :func:`permanence.runtime.read_engine`: the write side loads only when they are behind)."""
    from permanence.runtime import read_engine

    with read_engine(settings()) as engine:
        yield engine


def today() -> date:
    """The business date: ``PERMANENCE_TODAY`` when set, else the machine's date."""
    return settings().today_source()()


__all__ = [
    "AS_OF",
    "JSON",
    "KNOWN_AT",
    "PLOT",
    "UsageError",
    "app",
    "due_text",
    "emit",
    "exits",
    "fail",
    "guarded",
    "projections_app",
    "reader",
    "required_date",
    "runtime",
    "settings",
    "to_date",
    "today",
]
