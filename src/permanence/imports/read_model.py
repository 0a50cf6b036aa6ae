"""What the importer asks of the read model: which of a file's vintages it already holds, with
what figures, and the ledger's totals for the reconciliation (fast lookups, possibly lagging:
the event store stays the final word)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import Engine, select

from projections.tables import vintages

from .summary import ImportSummary


def read_model_figures(engine: Engine) -> Callable[[Sequence[str]], dict[str, tuple[int, int]]]:
    """(quantity, buffer) of these vintage ids as the read model holds them."""

    def figures(ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        with engine.connect() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = list(ids[start : start + _IN_CHUNK])
                query = select(vintages.c.vintage_id, vintages.c.quantity, vintages.c.buffer).where(
                    vintages.c.vintage_id.in_(chunk)
                )
                found.update((row[0], (int(row[1]), int(row[2]))) for row in conn.execute(query))
        return found

    return figures


def reconcile(summary: ImportSummary, accepted: set[str], engine: Engine) -> None:
    """Put the ledger's issued and buffer figures for the file's vintages beside the file's:
    read back from the read model after the import, not from what the importer counted."""
    held = read_model_figures(engine)(sorted(accepted))
    summary.tally("issued", "ledger", sum(q for q, _ in held.values()))
    summary.tally("buffer", "ledger", sum(b for _, b in held.values()))


def read_model_ids(engine: Engine) -> Callable[[Sequence[str]], set[str]]:
    """Which of these vintage ids the read model holds, in a few ``IN`` queries.

    The read model only ever holds vintages the event store has, so whatever it finds is a
    duplicate for certain; what it misses may still exist (it can lag after a crash), which
    the optimistic insert in :meth:`Loader._issue` settles.
    """

    def known(ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with engine.connect() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = list(ids[start : start + _IN_CHUNK])
                query = select(vintages.c.vintage_id).where(vintages.c.vintage_id.in_(chunk))
                found.update(row[0] for row in conn.execute(query))
        return found

    return known


_IN_CHUNK = 500

