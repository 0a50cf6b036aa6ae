"""How commands print: JSON for programs, text and tables for people.

``--json`` prints the data as it is. Human output never shows a Python repr: numbers get
thousands separators, ``None`` is ``-``, an empty mapping is ``none``, nested values are
written inline (``pool 4,000, insurer 1,000``). Tables are rich tables; rich is imported
only when one is printed, and when stdout is not a terminal a table is never wrapped or
cut (it is as wide as it needs to be), so its output can be read by ``grep`` and ``awk``.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import typer

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

Part: TypeAlias = "str | RenderableType"
Human: TypeAlias = "str | RenderableType | list[Any]"
Align = Literal["left", "right"]


def emit(data: Any, as_json: bool, human: Callable[[Any], Human] | None = None) -> None:
    """Print ``data`` as JSON, or as ``human`` renders it (default: :func:`plain`)."""
    if as_json:
        typer.echo(as_json_text(data))
        return
    out = human(data) if human else plain(data)
    show(*(out if isinstance(out, list) else [out]))


def as_json_text(data: Any) -> str:
    """``json.dumps(data, indent=2, default=str)``, made by orjson when it can say the same
    (a grouping by project prints 50,000 groups: several times faster), else by json."""
    import orjson

    options = (orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
               | orjson.OPT_PASSTHROUGH_DATACLASS)
    try:
        return orjson.dumps(data, default=str, option=options).decode()
    except TypeError:  # e.g. an integer beyond 64 bits
        return json.dumps(data, indent=2, default=str)


def show(*parts: Part) -> None:
    """Print text and rich renderables in order (text alone needs no rich).

    On a terminal rich fits tables to its width. Anywhere else (a pipe, a file, a test)
    a table is as wide as its widest row, up to :data:`PIPE_WIDTH` columns, and lines carry
    no trailing blanks."""
    if all(isinstance(p, str) for p in parts):
        typer.echo("\n".join(str(p) for p in parts))
        return
    from rich.console import Console

    console = Console(highlight=False)
    if console.is_terminal:
        for part in parts:
            _print(console, part)
        return
    unbounded = console.options.update_width(PIPE_WIDTH)
    widest = max(console.measure(p, options=unbounded).maximum
                 for p in parts if not isinstance(p, str))
    buffer = io.StringIO()
    console = Console(highlight=False, file=buffer, width=max(80, widest), color_system=None)
    for part in parts:
        _print(console, part)
    typer.echo("\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").split("\n")))


#: the widest a table is printed when stdout is not a terminal
PIPE_WIDTH = 160


def _print(console: Any, part: Part) -> None:
    if isinstance(part, str):
        console.print(part, markup=False, highlight=False, soft_wrap=True)
    else:
        console.print(part)


def table(
    columns: Sequence[tuple[str, Align]],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    total: Sequence[Any] | None = None,
) -> Table:
    """A table: headers with their alignment, rows of values (see :func:`cell`), and a
    ``total`` row under a rule."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    t = Table(box=box.SIMPLE, title=title, title_justify="left", pad_edge=False,
              show_edge=False, header_style="bold", title_style="bold", footer_style="bold",
              show_footer=total is not None)
    for i, (header, align) in enumerate(columns):
        t.add_column(header, justify=align, no_wrap=align == "right",
                     footer=Text(cell(total[i])) if total is not None else "")
    for row in rows:
        t.add_row(*(Text(cell(v)) for v in row))
    return t


class Bar:
    """A progress bar's handle: ``advance(n)`` by a step, or ``update(done, total)``."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def update(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total)


@contextmanager
def progress_bar(show: bool, description: str, total: int | None = None) -> Iterator[Bar]:
    """A rich progress bar on stderr, with the time left, when ``show`` (a terminal, no
    ``--quiet``, no ``--json``); else a handle that does nothing. It disappears when done."""
    if not show:
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        yield Bar(bar, bar.add_task(description, total=total))


def fields(pairs: Iterable[tuple[str, Any]]) -> Table:
    """Name/value pairs as a two-column grid (names dim, values as :func:`cell`)."""
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim")
    grid.add_column()
    for name, value in pairs:
        grid.add_row(Text(name), Text(cell(value)))
    return grid


def cell(value: Any) -> str:
    """One value as a person reads it: ``1,000``, ``-``, ``yes``, ``pool 400, fund 10``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:,.4f}".rstrip("0").rstrip(".")
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [cell(v) for v in value]
        return ("; " if any(isinstance(v, Mapping) for v in value) else ", ").join(items) or "none"
    return str(value)


def due_text(due: Mapping[str, int]) -> str:
    """``due pool 4,000, proponent 500``, or ``nothing due``: the obligors that owe."""
    owing = [f"{k} {v:,}" for k, v in due.items() if v]
    return "due " + ", ".join(owing) if owing else "nothing due"


def plain(data: Any, indent: int = 0) -> str:
    """Nested data as indented ``name: value`` lines, with no Python reprs."""
    pad = "  " * indent
    if isinstance(data, Mapping):
        lines = []
        for k, v in data.items():
            if isinstance(v, (Mapping, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(plain(v, indent + 1))
            elif isinstance(v, int) and not isinstance(v, bool) and ("year" in k or k == "version"):
                lines.append(f"{pad}{k}: {v}")
            else:
                lines.append(f"{pad}{k}: {cell(v)}")
        return "\n".join(lines)
    if isinstance(data, list):
        if not data:
            return f"{pad}none"
        return "\n".join(
            (f"{pad}-\n{plain(x, indent + 1)}" if isinstance(x, (Mapping, list)) else f"{pad}- {cell(x)}")
            for x in data
        )
    return f"{pad}{cell(data)}"
