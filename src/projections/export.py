"""Tamper-evident export of the event log, and its verification without a database.

An auditor is handed a file and must be able to tell, offline, that nothing in it was
altered, removed, added or moved, and that the totals it states follow from its events.

File format (JSON Lines, UTF-8, ``permanence-export/1``)
---------------------------------------------------------
One line per stored event, in notification order, then one manifest line last::

    {"hash": H, "notification_id": 42, "originator_id": "uuid", "originator_version": 3,
     "prev_hash": P, "seq": 17, "state": {...the event state as stored...},
     "topic": "ledger.events:Verified"}

- ``seq`` counts 1..n within the file (a ``--program`` export numbers its own records).
- ``hash`` is the SHA-256 hex of the record's *canonical bytes*: the record without ``hash``,
  serialised as Python ``json.dumps(record, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False)`` encoded as UTF-8. ``prev_hash`` is the previous record's ``hash``
  (:data:`GENESIS`, 64 zeros, for the first), so the records form a chain.
- The manifest line has ``"manifest": true`` and holds ``head`` (the last record's hash;
  :data:`GENESIS` for an empty export), ``records``, ``by_event`` (record count per event
  type), ``vintages``, ``as_of`` (the export date), ``program`` (or null), and ``totals``
  re-derived by replaying every vintage's events: per program, ``vintages``, ``issued`` and
  ``buffer`` (quantity and buffer contribution of vintages issued by ``as_of``), ``exposure``,
  ``transferred`` and ``due`` by obligor as of ``as_of`` (domain.md section 4).

The head of a full export is what ``permanence head`` prints: a registry publishes it, and
a verifier compares it with the head of the file it was handed
(``permanence verify-export FILE --expect-head HASH``). Without that comparison a file cut
short at its end, with a manifest derived again for what is left, or a log forged and
chained afresh, verifies: the chain proves only that the file is whole *as it stands*.

What verification checks
------------------------
- Each line is one JSON object with no key given twice (parsers disagree on which value of
  a repeated key counts, so a record could mean one thing to this verifier and another to
  the next); a record has exactly the keys of :data:`RECORD_FIELDS`, its ``hash`` is its
  canonical hash, ``seq`` runs 1..n, ``prev_hash`` is the previous ``hash``, and
  ``notification_id`` increases.
- Every event replays on its vintage (domain.md section 4).
- The manifest has exactly the keys of :data:`MANIFEST_KEYS`: ``format``, ``algorithm``
  (``sha256``) and ``genesis`` are the values above; ``head``, ``records``, ``by_event``,
  ``vintages`` and ``totals`` equal what the file derives; every vintage belongs to
  ``program`` when one is named; ``as_of`` is a date. Two keys are informational:
  ``exported_at`` (when the file was written; checked to be a timestamp) and
  ``last_notification_id`` (the log position the export read up to; checked to be at least
  the last record's ``notification_id``).
- With an expected head, the file's head equals it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import ValidationError

from ledger.application import LedgerApp
from ledger.errors import LedgerError
from ledger.events import DomainEvent, Issued, VintageEvent
from ledger.mapper import decode_state
from ledger.profiles import Rules
from ledger.replay import fold
from ledger.vintage import Vintage

FORMAT = "permanence-export/1"
GENESIS = "0" * 64
PAGE_SIZE = 5_000
ISSUED_TOPIC = get_topic(Issued)
VINTAGE_TOPIC = get_topic(Vintage)
_EVENTS_MODULE = ISSUED_TOPIC.partition(":")[0] + ":"
RECORD_FIELDS = (
    "seq", "notification_id", "originator_id", "originator_version", "topic", "state",
    "prev_hash", "hash",
)
MANIFEST_KEYS = frozenset({
    "manifest", "format", "algorithm", "genesis", "exported_at", "as_of", "program",
    "last_notification_id", "head", "records", "by_event", "vintages", "totals",
})
HEAD_PATTERN = re.compile(r"[0-9a-f]{64}")


class ReplayError(LedgerError):
    """A record cannot be replayed: the stream it belongs to is broken or it is not an event."""


# ---------------------------------------------------------------------- records and chain


def canonical(obj: Any) -> bytes:
    """The bytes that are hashed: sorted keys, compact separators, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 hex of the record's canonical bytes without its own ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def log_records(
    app: LedgerApp,
    program: str | None = None,
    stop: int | None = None,
    page_size: int = PAGE_SIZE,
) -> Iterator[dict[str, Any]]:
    """Stored events in notification order, a page at a time (never the whole log at once).

    With ``program``, only events of that program's vintages: a stream's ``Issued`` event
    precedes its other events in the log, so the ids to keep are known when they are needed.
    """
    keep: set[Any] = set()
    start = 1
    while True:
        page = app.recorder.select_notifications(start=start, limit=page_size, stop=stop)
        for n in page:
            state = orjson.loads(n.state)
            if program is not None:
                if n.topic == ISSUED_TOPIC and state.get("program") == program:
                    keep.add(n.originator_id)
                elif n.originator_id not in keep:
                    continue
            yield {
                "notification_id": n.id,
                "originator_id": str(n.originator_id),
                "originator_version": n.originator_version,
                "topic": n.topic,
                "state": state,
            }
        if len(page) < page_size:
            return
        start = page[-1].id + 1


def sealed(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Number the records and chain them: each carries its predecessor's hash and its own."""
    prev = GENESIS
    for seq, record in enumerate(records, 1):
        body = {"seq": seq, **record, "prev_hash": prev}
        body["hash"] = prev = record_hash(body)
        yield body


STRESS_TOPICS = frozenset({"risk.record:StressTestRun", "ledger.stress_record:StressTestRun"})
"""A pool's stress-test run (recorded by :mod:`risk.record`; the second name is the one runs
recorded before the risk package existed carry). Named here, not imported: the read side does
not depend on ``risk``, and an untrusted file may only name classes on this list."""


def event_name(topic: str) -> str:
    return topic.rpartition(":")[2]


# ---------------------------------------------------------------------- replay


class Replayer:
    """Rebuilds vintages from export records with the domain classes alone (each record
    validated as untrusted input, then applied by :func:`ledger.replay.fold`).

    Holds one aggregate per vintage (not the events), so memory grows with the number of
    vintages, not with the length of the log.
    """

    def __init__(self) -> None:
        self.vintages: dict[str, Vintage] = {}
        self.stress_versions: dict[str, int] = {}
        self._rules: dict[bytes, Rules] = {}

    def apply(self, record: dict[str, Any]) -> Any:
        """Validate the record as its event class and apply it to its vintage."""
        if record.get("topic") in STRESS_TOPICS:
            return self._stress_run(record)
        cls = event_class(record["topic"])
        try:
            vid = str(UUID(str(record["originator_id"])))
        except ValueError:
            raise ReplayError(f"originator_id {record['originator_id']!r} is not a UUID") from None
        version = record["originator_version"]
        current = self.vintages.get(vid)
        expected = 1 if current is None else current.version + 1
        if version != expected:
            raise ReplayError(
                f"version sequence broken for vintage {vid}: expected version {expected}, "
                f"found {version}"
            )
        if (current is None) != issubclass(cls, Issued):
            raise ReplayError(
                f"vintage {vid}: {cls.__name__} at version {version}; a stream begins with "
                "its one issuance"
            )
        if not isinstance(record["state"], dict):
            raise ReplayError(f"{cls.__name__}: state is not a JSON object")
        try:
            state = decode_state(cls, orjson.dumps(record["state"]))
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ReplayError(f"{cls.__name__} cannot be upcast: {e!r}") from None
        state["originator_id"] = vid
        state["originator_version"] = version
        if current is None and state.get("originator_topic") != VINTAGE_TOPIC:
            raise ReplayError(f"vintage {vid}: issuance names an unknown aggregate class")
        try:
            event: VintageEvent = cls.model_validate(state)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ReplayError(f"{cls.__name__} does not validate: {where}: {first['msg']}") from None
        try:
            vintage = fold(current, event)  # the versions were checked above
        except (KeyError, AttributeError, LedgerError) as e:
            raise ReplayError(f"{cls.__name__} cannot be applied to vintage {vid}: {e!r}") from None
        if current is None:
            # Vintages of one profile version share equal rules: keep one copy of them.
            key = orjson.dumps(record["state"]["rules"], option=orjson.OPT_SORT_KEYS)
            vintage.rules = self._rules.setdefault(key, vintage.rules)
            self.vintages[vid] = vintage
        return event

    def _stress_run(self, record: dict[str, Any]) -> DomainEvent:
        """A pool's recorded stress test: validated and kept in sequence, not a vintage."""
        oid = str(record["originator_id"])
        version = record["originator_version"]
        expected = self.stress_versions.get(oid, 0) + 1
        if version != expected:
            raise ReplayError(
                f"version sequence broken for stress tests {oid}: expected version {expected}, "
                f"found {version}"
            )
        if not isinstance(record["state"], dict):
            raise ReplayError("StressTestRun: state is not a JSON object")
        state = {**record["state"], "originator_id": oid, "originator_version": version}
        run_class = resolve_topic(record["topic"])
        try:
            run = run_class.model_validate(state)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ReplayError(f"StressTestRun does not validate: {where}: {first['msg']}") from None
        self.stress_versions[oid] = version
        return run

    def totals(self, as_of: date) -> dict[str, dict[str, Any]]:
        """Per program: issued, buffer contributions, exposure and dues as of ``as_of``."""
        out: dict[str, dict[str, Any]] = {}
        for v in self.vintages.values():
            t = out.setdefault(v.program, {
                "vintages": 0, "issued": 0, "buffer": 0, "exposure": 0, "transferred": 0,
                "due": {"proponent": 0, "pool": 0},
            })
            t["vintages"] += 1
            if v.issued_on <= as_of:
                t["issued"] += v.quantity
                t["buffer"] += v.buffer
            t["exposure"] += v.exposure_at(as_of)
            t["transferred"] += v.transferred_at(as_of)
            for obligor, owed in v.due_at(as_of).items():
                t["due"][obligor] = t["due"].get(obligor, 0) + owed
        return dict(sorted(out.items()))


def event_class(topic: Any) -> type[VintageEvent]:
    """The event class a topic names; only the ledger's own events (a file is untrusted)."""
    if not isinstance(topic, str) or not topic.startswith(_EVENTS_MODULE):
        raise ReplayError(f"unknown event topic {topic!r}")
    try:
        cls = resolve_topic(topic)
    except Exception:  # noqa: BLE001 - any failure to resolve means "not one of ours"
        raise ReplayError(f"unknown event topic {topic!r}") from None
    if not (isinstance(cls, type) and issubclass(cls, VintageEvent)):
        raise ReplayError(f"unknown event topic {topic!r}")
    return cls


def replay_log(app: LedgerApp, stop: int | None = None) -> Replayer:
    """Every vintage rebuilt from the log in one paged pass."""
    replayer = Replayer()
    for record in log_records(app, stop=stop):
        replayer.apply(record)
    return replayer


# ---------------------------------------------------------------------- export


def write_export(
    app: LedgerApp, out: Path, program: str | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """Write the export and its manifest; returns the manifest.

    Written to a temporary file and renamed, so a failed export leaves no partial file; the
    log is read up to the notification that was last when the export began.
    """
    as_of = as_of or date.today()
    stop = app.recorder.max_notification_id() or 0
    replayer = Replayer()
    by_event: Counter[str] = Counter()
    head, count = GENESIS, 0
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tmp.open("wb") as f:
            if stop:
                for record in sealed(log_records(app, program, stop=stop)):
                    try:
                        replayer.apply(record)
                    except ReplayError as e:
                        raise ReplayError(f"notification {record['notification_id']}: {e}") from None
                    f.write(canonical(record) + b"\n")
                    by_event[event_name(record["topic"])] += 1
                    head, count = record["hash"], record["seq"]
            manifest = {
                "manifest": True,
                "format": FORMAT,
                "algorithm": "sha256",
                "genesis": GENESIS,
                "exported_at": datetime.now(UTC).isoformat(),
                "as_of": as_of.isoformat(),
                "program": program,
                "last_notification_id": stop,
                "head": head,
                "records": count,
                "by_event": dict(sorted(by_event.items())),
                "vintages": len(replayer.vintages),
                "totals": replayer.totals(as_of),
            }
            f.write(canonical(manifest) + b"\n")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


def head(app: LedgerApp) -> dict[str, Any]:
    """The hash of the last record of a full export, computed without writing one."""
    stop = app.recorder.max_notification_id() or 0
    last, count = GENESIS, 0
    if stop:
        for record in sealed(log_records(app, stop=stop)):
            last, count = record["hash"], record["seq"]
    return {"head": last, "records": count, "last_notification_id": stop}
