"""The ledger's events table read directly, for rebuilds.

A rebuild reads every event once in log order and then the streams of the aggregates that
changed after their first event, on its own connection and inside its own transaction.
Going through SQL rather than the recorder saves building a notification object per event,
and lets it ask for many streams at once. Records come back as :class:`ledger.replay.Record`
(notification id, canonical originator id, version, topic, state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ledger.replay import Record

Row = tuple[int, str, int, str, Any]
"""A :class:`Record`'s fields as the database cursor returns them, unnamed: the rebuild's
first pass reads every event of the log this way, where naming each of a million rows
would cost more than unpacking them (see :meth:`EventTable.after`)."""

__all__ = ["EventTable", "Record", "Row"]

SQLITE_CANONICAL_ID = (
    "CASE WHEN length(originator_id) = 32 THEN substr(originator_id, 1, 8) || '-' || "
    "substr(originator_id, 9, 4) || '-' || substr(originator_id, 13, 4) || '-' || "
    "substr(originator_id, 17, 4) || '-' || substr(originator_id, 21) ELSE originator_id END"
)
"""eventsourcing's SQLite recorder stores ids as 32 hex digits; the read models use the
canonical hyphenated form (``str(UUID)``)."""


@dataclass(frozen=True)
class EventTable:
    """Where the events are and how to address them, per database."""

    table: str  # qualified where it needs to be
    nid: str  # the notification id column
    canonical_id: str  # SQL giving the canonical text of the originator id
    mark: str  # the DBAPI placeholder
    hex_ids: bool  # ids are stored as 32 hex digits (SQLite) rather than as UUIDs

    @classmethod
    def of(cls, recorder: Any, dialect: str) -> EventTable:
        """The events table of the ledger's eventsourcing SQLite or PostgreSQL recorder."""
        name = getattr(recorder, "events_table_name", None)
        schema = getattr(getattr(recorder, "datastore", None), "schema", None)
        if name and dialect == "sqlite":
            return cls(name, "rowid", SQLITE_CANONICAL_ID, "?", hex_ids=True)
        if name and schema and dialect == "postgresql":
            return cls(f'"{schema}"."{name}"', "notification_id", "originator_id::text", "%s",
                       hex_ids=False)
        raise ValueError(f"no events table to read for a {type(recorder).__name__} on {dialect}")

    def after(self, cursor: Any, position: int, limit: int, upto: int | None = None) -> list[Row]:
        """Up to ``limit`` records after notification ``position`` (and, if given, at or
        before ``upto``), in log order, as unnamed rows (the hot path of a rebuild)."""
        bound = "" if upto is None else f" AND {self.nid} <= {self.mark}"
        cursor.execute(
            f"SELECT {self.nid}, {self.canonical_id}, originator_version, topic, state "
            f"FROM {self.table} WHERE {self.nid} > {self.mark}{bound} ORDER BY {self.nid} "
            f"LIMIT {self.mark}",
            (position, limit) if upto is None else (position, upto, limit),
        )
        rows: list[Row] = cursor.fetchall()
        return rows

    def bounds(self, cursor: Any) -> tuple[int, int]:
        """The first and last notification ids recorded (0, 0 when there are none)."""
        cursor.execute(f"SELECT min({self.nid}), max({self.nid}) FROM {self.table}")
        first, last = cursor.fetchone()
        return int(first or 0), int(last or 0)

    def later(self, cursor: Any) -> int:
        """How many events are not the first of their stream (a second pass's work)."""
        cursor.execute(f"SELECT count(*) FROM {self.table} WHERE originator_version > 1")
        return int(cursor.fetchone()[0])

    def streams(self, cursor: Any, originator_ids: Sequence[str], upto: int) -> list[list[Record]]:
        """The streams of these aggregates up to notification ``upto``, each in version order.

        The bound keeps out events recorded since the rebuild read the log (PostgreSQL lets
        writers go on meanwhile): they are the next catch-up's, not this rebuild's.
        """
        if not originator_ids:
            return []
        stored = [UUID(i).hex if self.hex_ids else UUID(i) for i in originator_ids]
        marks = ", ".join([self.mark] * len(stored))
        cursor.execute(
            f"SELECT {self.nid}, {self.canonical_id}, originator_version, topic, state "
            f"FROM {self.table} WHERE originator_id IN ({marks}) AND {self.nid} <= {self.mark} "
            "ORDER BY originator_id, originator_version",
            [*stored, upto],
        )
        out: list[list[Record]] = []
        for record in map(Record._make, cursor.fetchall()):
            if not out or out[-1][0].originator_id != record.originator_id:
                out.append([])
            out[-1].append(record)
        return out
