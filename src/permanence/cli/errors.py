"""Errors to exit codes, in one place for every command.

0: done. 1: refused: a rule of the ledger, an unknown name, a ledger that is not there, a
failed check, or a database that cannot be used (locked, read-only, unreachable). 2:
malformed input: a bad value, an unknown choice, a missing option. Either way one line on
stderr names the problem, and nothing was written.

The error classes are looked up among the modules already loaded: an error of a module
that was never imported cannot have been raised, and a command that needs neither the
importers nor the HTTP layer must not load them just to name their errors.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

P = ParamSpec("P")
T = TypeVar("T")

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2

EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 refused (a rule of the ledger, an unknown vintage, program or "
    "pool, a missing ledger, a failed check or an unusable database); 2 malformed input (a bad "
    "value, choice or option). Errors are one line on stderr; nothing is written."
)

#: (module, class) of malformed input: exit 2
USAGE_ERRORS = (
    ("permanence.parsing", "UsageError"),
    ("permanence.config", "ConfigError"),
    ("projections.listings", "ListingError"),
    ("permanence.imports.cells", "ImportFormatError"),
)
#: refused commands: exit 1
REFUSALS = (
    ("ledger.errors", "LedgerError"),
    ("permanence.runtime", "LedgerNotFound"),
    ("permanence.tokens", "TokenError"),
)
#: a store that cannot be used: exit 1, "database: ..."
STORE_ERRORS = (
    ("eventsourcing.persistence", "PersistenceError"),
    ("sqlalchemy.exc", "SQLAlchemyError"),
    ("sqlite3", "Error"),
)


def _loaded(pairs: tuple[tuple[str, str], ...]) -> tuple[type[BaseException], ...]:
    found = []
    for module, name in pairs:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            found.append(cls)
    return tuple(found)


def exit_for(error: BaseException) -> tuple[int, str] | None:
    """The exit code and one-line message of an error the CLI knows; None for any other."""
    if isinstance(error, _loaded(USAGE_ERRORS)):
        return EXIT_USAGE, str(error)
    if isinstance(error, _loaded(REFUSALS)):
        return EXIT_REFUSED, str(error)
    if isinstance(error, _loaded(STORE_ERRORS)):
        return EXIT_REFUSED, f"database: {database_problem(error)}"
    return None


def database_problem(error: BaseException) -> str:
    """The first line of a store's error, naming the setting when a lock wait timed out."""
    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
    if "lock timeout" in first:
        first += " (PERMANENCE_LOCK_TIMEOUT_SECONDS)"
    return first


def usage_problem(error: Exception) -> str:
    """A usage error on one line, in the CLI's words: ``by: 'x' is not one of ...`` for a
    bad value (the field first, as every other message), click's own words otherwise;
    then the command to ask for help."""
    from typer._click.exceptions import BadParameter, MissingParameter

    param = getattr(error, "param", None)
    if isinstance(error, BadParameter) and not isinstance(error, MissingParameter) and param:
        name = param.metavar if param.param_type_name == "argument" and param.metavar else (
            param.opts[0] if param.opts else param.name or "value")
        text = f"{name.lstrip('-').lower()}: {error.message}"
    else:
        format_message = getattr(error, "format_message", None)
        text = format_message() if format_message else str(error)
    text = " ".join(text.replace("Value error, ", "").split())
    ctx = getattr(error, "ctx", None)
    if ctx is not None:
        text += f" (see {ctx.command_path} -h)"
    return text


def say_error(message: str) -> None:
    """The one line on stderr that names the problem."""
    typer.echo(f"error: {message}", err=True)


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    say_error(message)
    raise typer.Exit(code)


def exits(command: Callable[P, T]) -> Callable[P, T]:
    """Decorate a command: the errors it knows become one line and their exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except Exception as e:  # mapped, or raised again as it was
            mapped = exit_for(e)
            if mapped is None:
                raise
            fail(mapped[1], mapped[0])

    return run


def guarded(body: Callable[[], T]) -> T:
    """Run a command body under :func:`exits` (for commands written as a closure)."""
    return exits(body)()
