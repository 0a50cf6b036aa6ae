"""Reads never show figures older than the events recorded before they arrived.

See :class:`Freshness`; the trustee answers are cached by the position it observes
(:mod:`permanence.http.answers`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from permanence.runtime import Runtime

PROJECTOR_GRACE_SECONDS = 0.5
"""How long a read that finds the read models behind the event log waits for another
projector (a writing process projects its own events right after saving them) before it
projects the pending events itself."""
POLL_SECONDS = (0.001, 0.002, 0.004)
"""Pauses between looks at the tracking position while waiting (the last one repeats)."""


class Freshness:
    """The read-model position a read must reflect: every event recorded before it arrived.

    A read asks the event log for its head (one small query). The tracking position never
    passes the head and never goes back (but for a rebuild, see :meth:`confirm`), so when
    this process has already read a position at or past the head, the read models are at
    exactly that position and nothing more is asked.

    Otherwise events were recorded that this process has not seen projected. Usually the
    process that recorded them is projecting them at this moment (writers project their
    own writes); racing it would compute the same page only to lose the conditional commit,
    holding up reads meanwhile. So one thread per process polls the tracking position until
    it reaches the head, and projects the pending events itself (under the app's refresh
    lock, which writes hold too) only if nobody has done so within
    :data:`PROJECTOR_GRACE_SECONDS` (a writer that does not project, or is gone). Other
    reads that find lag queue behind that thread and are mostly satisfied by what it saw.
    Either way the read ends at a position at or past the head it saw.
    """

    def __init__(self, runtime: Runtime, refresh_lock: threading.Lock,
                 grace: float = PROJECTOR_GRACE_SECONDS,
                 on_regress: Callable[[], None] | None = None) -> None:
        self.runtime = runtime
        self.refresh_lock = refresh_lock
        self.grace = grace
        self.on_regress = on_regress
        self._seen = -1  # the highest tracking position this process has read
        self._seen_lock = threading.Lock()
        self._catching_up = threading.Lock()

    def head(self) -> int:
        """The last notification id recorded (0 for an empty log)."""
        return int(self.runtime.app.recorder.max_notification_id() or 0)

    def observe(self) -> int:
        """A tracking position whose read models include every event recorded before now."""
        head = self.head()
        seen = self._seen
        # the position never passes the head, so head <= seen means they are equal
        return seen if head <= seen else self._reach(head)

    def confirm(self, position: int) -> None:
        """Make sure the read models are still at ``position`` or later before answering.

        They go backwards only when rebuilt (dropped and replayed from the first event):
        then what this process saw and the answers kept are forgotten, and the read catches
        up as any read that finds lag does.
        """
        current = self.runtime.projector.position()
        if current >= position:
            return
        with self._seen_lock:
            self._seen = min(self._seen, current)
        if self.on_regress is not None:
            self.on_regress()
        self._reach(position)

    def _note(self, position: int) -> int:
        with self._seen_lock:
            self._seen = max(self._seen, position)
        return position

    def _reach(self, target: int) -> int:
        with self._catching_up:
            if self._seen >= target:  # the thread before this one got there
                return self._seen
            position = self._wait_for_projector(target)
            if position < target:
                with self.refresh_lock:
                    self.runtime.refresh()
                position = self.runtime.projector.position()
            return self._note(position)

    def _wait_for_projector(self, target: int) -> int:
        deadline = time.monotonic() + self.grace
        pauses = iter(POLL_SECONDS)
        pause = 0.0
        while True:
            position = self.runtime.projector.position()
            if position >= target or time.monotonic() >= deadline:
                return position
            pause = next(pauses, pause)
            time.sleep(pause)


__all__ = ["POLL_SECONDS", "PROJECTOR_GRACE_SECONDS", "Freshness"]
