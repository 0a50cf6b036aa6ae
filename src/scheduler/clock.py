"""Where the scheduler's "today" comes from.

Every time-driven rule is a function of the business date, so the scheduler never calls
``date.today()`` itself: it asks a clock. Production uses :class:`SystemClock`; tests and
the what-if simulation use :class:`FixedClock`, which moves only when told to.
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    """A source of the current instant and business date."""

    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    """The wall clock, in one time zone (the business date is that zone's date)."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(self.tz) if self.tz is not None else datetime.now().astimezone()

    def today(self) -> date:
        return self.now().date()


class FixedClock:
    """A clock that stands still until set or advanced (tests, simulation)."""

    def __init__(self, day: date, tz: tzinfo = UTC) -> None:
        self._lock = threading.Lock()
        self._now = datetime(day.year, day.month, day.day, 12, 0, tzinfo=tz)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def today(self) -> date:
        return self.now().date()

    def set(self, day: date) -> None:
        with self._lock:
            self._now = self._now.replace(year=day.year, month=day.month, day=day.day)

    def advance(self, days: int) -> date:
        with self._lock:
            self._now = self._now + timedelta(days=days)
            return self._now.date()
