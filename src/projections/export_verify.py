"""Verification of an export without a database (the file format and what is checked are in
:mod:`projections.export`): recompute the chain, replay every vintage, re-derive the manifest."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from projections.export import (
    FORMAT,
    GENESIS,
    MANIFEST_KEYS,
    RECORD_FIELDS,
    Replayer,
    ReplayError,
    event_name,
    record_hash,
)


@dataclass(frozen=True)
class Verification:
    """The outcome of verifying an export: ``problem`` names the first thing wrong."""

    ok: bool
    problem: str | None
    records: int
    head: str
    vintages: int
    totals: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Problem(Exception):
    """The first problem found; verification stops there."""


def verify_export(path: Path, expect_head: str | None = None) -> Verification:
    """Recompute the chain, replay the events and re-derive the manifest; no database.

    With ``expect_head`` (a published ``permanence head``), the file must end at that hash:
    the only check that catches records cut from the end or a log chained afresh.
    Raises ``FileNotFoundError``/``IsADirectoryError`` when there is no file to read.
    """
    chain = _Chain(path)
    try:
        chain.run()
        if expect_head is not None and chain.prev != expect_head:
            raise _Problem(
                f"head mismatch: the file ends at {chain.prev} (record {chain.count}), not at the "
                f"expected head {expect_head}: records were removed from its end, added, or "
                "the log was chained afresh"
            )
    except _Problem as p:
        return Verification(False, str(p), chain.count, chain.prev, len(chain.replayer.vintages), None)
    return Verification(True, None, chain.count, chain.prev, len(chain.replayer.vintages), chain.totals)


class _Chain:
    """One streaming pass over the file; a second pass only to explain a broken sequence."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replayer = Replayer()
        self.by_event: Counter[str] = Counter()
        self.count = 0
        self.prev = GENESIS
        self.last_notification = 0
        self.manifest: dict[str, Any] | None = None
        self.totals: dict[str, Any] | None = None

    def run(self) -> None:
        with self.path.open("rb") as f:
            for lineno, obj in _lines(f):
                if self.manifest is not None:
                    raise _Problem(f"line {lineno}: content after the manifest")
                if obj.get("manifest") is True:
                    self.manifest = obj
                    continue
                self.record(lineno, obj)
        self.check_manifest()

    def record(self, lineno: int, rec: dict[str, Any]) -> None:
        missing = [k for k in RECORD_FIELDS if k not in rec]
        if missing:
            raise _Problem(f"line {lineno}: record lacks {', '.join(missing)}")
        unknown = sorted(set(rec) - set(RECORD_FIELDS), key=str)
        if unknown:
            raise _Problem(f"line {lineno}: record has an unknown key {unknown[0]!r}")
        seq, expected = rec["seq"], self.count + 1
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise _Problem(f"line {lineno}: seq {seq!r} is not a number")
        if record_hash(rec) != rec["hash"]:
            raise _Problem(f"record {seq} altered: hash mismatch")
        if seq < expected:
            _, hashes = self.scan()
            raise _Problem(self.inserted(rec, hashes))
        if seq > expected:
            raise _Problem(self.explain_gap(rec, expected))
        if rec["prev_hash"] != self.prev:
            raise _Problem(
                f"record {seq}: prev_hash does not match record {self.count} (the chain is broken)"
            )
        notification = rec["notification_id"]
        if not _is_int(notification) or notification <= self.last_notification:
            raise _Problem(
                f"record {seq}: notification_id {notification!r} does not follow "
                f"{self.last_notification}"
            )
        try:
            self.replayer.apply(rec)
        except ReplayError as e:
            raise _Problem(f"record {seq}: {e}") from None
        self.by_event[event_name(rec["topic"])] += 1
        self.count, self.prev, self.last_notification = seq, rec["hash"], notification

    def inserted(self, rec: dict[str, Any], hashes: Counter[str]) -> str:
        what = "a copy of record" if hashes[rec["hash"]] > 1 else "a second record numbered"
        return f"record inserted after record {self.count}: {what} {rec['seq']}"

    def explain_gap(self, rec: dict[str, Any], expected: int) -> str:
        """Record ``rec`` comes where ``expected`` should: a deletion, an insertion or a move."""
        seqs, hashes = self.scan()
        seq = rec["seq"]
        if seqs[seq] > 1:
            return self.inserted(rec, hashes)
        if seqs[expected]:
            return f"records out of order: record {seq} comes before record {expected}"
        why = f"record {seq} follows record {self.count}"
        if rec["prev_hash"] != self.prev:
            why += f" and its prev_hash does not match record {self.count}"
        return f"record {expected} missing: {why}"

    def scan(self) -> tuple[Counter[int], Counter[str]]:
        """How often each seq and each hash occurs in the whole file."""
        seqs: Counter[int] = Counter()
        hashes: Counter[str] = Counter()
        with self.path.open("rb") as f:
            for _, obj in _lines(f, strict=False):
                if isinstance(obj.get("seq"), int):
                    seqs[obj["seq"]] += 1
                if isinstance(obj.get("hash"), str):
                    hashes[obj["hash"]] += 1
        return seqs, hashes

    def check_manifest_keys(self, m: dict[str, Any]) -> None:
        """Every key known, none missing; the fixed and informational ones well-formed."""
        unknown = sorted(set(m) - MANIFEST_KEYS, key=str)
        if unknown:
            raise _Problem(f"manifest: unknown key {unknown[0]!r}")
        missing = sorted(MANIFEST_KEYS - set(m))
        if missing:
            raise _Problem(f"manifest: lacks {', '.join(missing)}")
        if m["algorithm"] != "sha256":
            raise _Problem(f"manifest: algorithm {m['algorithm']!r} is not 'sha256'")
        if m["genesis"] != GENESIS:
            raise _Problem("manifest: genesis is not 64 zeros")
        if not (isinstance(m["program"], str) or m["program"] is None):
            raise _Problem(f"manifest: program {m['program']!r} is not a name")
        try:
            datetime.fromisoformat(m["exported_at"])
        except (TypeError, ValueError):
            raise _Problem(f"manifest: exported_at {m['exported_at']!r} is not a timestamp") from None
        stop = m["last_notification_id"]
        if not _is_int(stop) or stop < self.last_notification:
            raise _Problem(
                f"manifest mismatch: last_notification_id is {stop!r}, the last record is "
                f"notification {self.last_notification}"
            )

    def check_manifest(self) -> None:
        m = self.manifest
        if m is None:
            raise _Problem(f"manifest missing: the file ends after record {self.count}")
        if m.get("format") != FORMAT:
            raise _Problem(f"manifest: unknown format {m.get('format')!r}")
        self.check_manifest_keys(m)
        listed = m.get("records")
        if isinstance(listed, int) and listed > self.count:
            raise _Problem(
                f"record {self.count + 1} missing: the file ends after record {self.count}, "
                f"the manifest lists {listed} records"
            )
        if listed != self.count:
            raise _Problem(f"manifest mismatch: records is {listed!r}, the file holds {self.count}")
        if m.get("head") != self.prev:
            raise _Problem(f"manifest mismatch: head is not the hash of record {self.count}")
        program = m.get("program")
        if program is not None:
            other = next((v for v in self.replayer.vintages.values() if v.program != program), None)
            if other is not None:
                raise _Problem(
                    f"manifest mismatch: vintage {other.id} belongs to program {other.program}, "
                    f"not {program}"
                )
        try:
            as_of = date.fromisoformat(m.get("as_of", ""))
        except (TypeError, ValueError):
            raise _Problem(f"manifest: as_of {m.get('as_of')!r} is not a date") from None
        totals = self.replayer.totals(as_of)
        derived = {
            "by_event": dict(self.by_event),
            "vintages": len(self.replayer.vintages),
            "totals": totals,
        }
        for key, value in derived.items():
            diff = first_difference(m.get(key), value, key)
            if diff is not None:
                raise _Problem(f"manifest mismatch: {diff}")
        self.totals = totals


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _lines(f: Any, strict: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) for each non-empty line; a bad line is a problem if strict.

    A key given twice in any object of a line is a problem too: which value counts differs
    between JSON parsers, so the record would not mean one thing to every verifier.
    """
    for lineno, raw in enumerate(f, 1):
        if not raw.strip():
            continue
        try:
            obj: Any = json.loads(raw, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
        except _DuplicateKey as e:
            if strict:
                raise _Problem(f"line {lineno}: key {e.args[0]!r} is given twice") from None
            continue
        except ValueError:  # includes JSONDecodeError and bytes that are not UTF-8
            obj = None
        if not isinstance(obj, dict):
            if strict:
                raise _Problem(f"line {lineno}: not a JSON object")
            continue
        yield lineno, obj


def first_difference(stated: Any, derived: Any, path: str) -> str | None:
    """Where ``stated`` (the manifest) first differs from ``derived`` (the replay), or None."""
    if isinstance(stated, dict) and isinstance(derived, dict):
        for key in sorted(set(stated) | set(derived), key=str):
            diff = first_difference(stated.get(key), derived.get(key), f"{path}.{key}")
            if diff is not None:
                return diff
        return None
    if stated == derived and type(stated) is type(derived):
        return None
    return f"{path} is {json.dumps(stated)}, replay gives {json.dumps(derived)}"
