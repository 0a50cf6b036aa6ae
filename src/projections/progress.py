"""A rebuild's progress, for a face that shows it (``projections rebuild`` draws a bar)."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[int, int], None]
"""Called with (events done, events in all)."""


class Ticker:
    """Counts the events a rebuild has applied and tells its ``progress`` callback."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.done = self.total = 0

    def start(self, total: int) -> None:
        self.total = total
        self._report()

    def add(self, events: int) -> None:
        self.done = min(self.total, self.done + events)
        self._report()

    def finish(self, total: int) -> None:
        self.done = self.total = total
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total)
