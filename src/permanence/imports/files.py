"""The file side of an import: checked before anything is written, and the rejects file
written after (one line per rejected row, with its source row)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

from . import PARSERS
from .cells import count_rows, read_rows
from .records import ParseResult
from .summary import ImportSummary, Reject


@dataclass
class PreparedFile:
    """A file whose format, bytes and header were checked before anything is written."""

    fmt: str
    path: Path
    rows: int
    results: Iterator[ParseResult]


def prepare(fmt: str, path: Path) -> PreparedFile:
    """Check the whole file first, so that a wrong or unreadable file writes nothing.

    ``ValueError`` for an unknown format, ``FileNotFoundError``, or
    :class:`~permanence.imports.ImportFormatError` for undecodable bytes anywhere or missing
    columns.
    """
    if fmt not in PARSERS:
        known = ", ".join(sorted(PARSERS))
        raise ValueError(f"unknown import format {fmt!r}; known formats: {known}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows = count_rows(path)
    results = PARSERS[fmt](path)
    first = next(results, None)  # reads the header: missing columns raise here
    return PreparedFile(fmt, path, rows, chain([] if first is None else [first], results))


def default_rejects_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".rejects.csv")


def fill_raw(prepared: PreparedFile, rejects: list[Reject]) -> None:
    """Give the ledger's refusals their source row: read again, only if there are any."""
    wanted = {r.line for r in rejects if not r.raw}
    if not wanted:
        return
    raws: dict[int, str] = {}
    for row in read_rows(prepared.path, fmt=prepared.fmt, required=()):
        if row.line in wanted:
            raws[row.line] = row.raw
    for n, reject in enumerate(rejects):
        if not reject.raw and reject.line in raws:
            rejects[n] = Reject(reject.line, reject.reason, raws[reject.line])


def write_rejects(path: Path, rejects: Sequence[Reject]) -> None:
    """The rejects file: CSV ``line,reason,raw``, one line per rejected row or record."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["line", "reason", "raw"])
    for reject in rejects:
        writer.writerow([reject.line, reject.reason, reject.raw])
    Path(path).write_text(buffer.getvalue(), encoding="utf-8", newline="")


def save_rejects(summary: ImportSummary, path: Path | None = None) -> None:
    """Write the rejects file if anything was rejected (default ``FILE.rejects.csv``)."""
    if summary.rejects:
        target = path or default_rejects_path(Path(summary.file))
        write_rejects(target, summary.rejects)
        summary.rejects_file = str(target)

