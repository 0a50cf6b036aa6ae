"""Answers to trustee questions, kept per read-model position so repeated reads are free.

A trustee dashboard asks the same few questions again and again (liabilities by program,
the buffer, the run-off), and each answer costs a scan of the roll-ups (10-20 ms). The read
models change only when a projector commits a page, and their tracking position names
exactly which events they include; an answer is therefore a function of the question
(endpoint and every resolved parameter, ``as_of`` and ``known_at`` included) and of that
position. :class:`AnswerCache` keeps serialised answers under both.

Guarantees:

- **Never older than observed.** An answer is found only under the exact position the
  caller asks with, and the caller asks with the position its read observed (see
  ``permanence.http.freshness.Freshness``), so a cached answer never predates what the read saw.
  When a newer position is stored, answers of older positions are dropped: no new request
  can ask for them any more.
- **Bounded.** At most ``max_entries`` answers and ``max_bytes`` of them, least recently
  used first out; an answer larger than ``max_bytes / 4`` is returned but not kept.
- **Single flight.** Concurrent misses for one key compute once; the others wait for that
  result (or its exception, which is not cached).
- **Thread-safe.** One lock guards the table; computing happens outside it.

Over HTTP (:func:`answer`) each answer carries a strong ``ETag`` (a digest of its bytes) and
``Cache-Control: private, no-cache``: a client may keep it but must ask again, and a
request whose ``If-None-Match`` names the current answer gets 304 without the body.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from permanence.http.dependencies import get_runtime
from permanence.http.freshness import Freshness
from permanence.runtime import Runtime

Question = tuple[Hashable, ...]
"""The endpoint and its fully resolved parameters, e.g. ``("/buffer", pool, as_of, known_at)``."""

Key = tuple[Question, int]
"""A question at a read-model position."""


@dataclass(frozen=True)
class AnswerStats:
    """Counters since the cache was made; ``shared`` misses waited for another's computation."""

    hits: int
    misses: int
    shared: int
    evictions: int
    entries: int
    bytes: int

    @property
    def requests(self) -> int:
        return self.hits + self.misses + self.shared

    @property
    def hit_ratio(self) -> float:
        """Share of requests answered without computing (a hit, or a shared computation)."""
        return (self.hits + self.shared) / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, int | float]:
        return {"hits": self.hits, "misses": self.misses, "shared": self.shared,
                "evictions": self.evictions, "entries": self.entries, "bytes": self.bytes,
                "hit_ratio": round(self.hit_ratio, 4)}


class _Flight:
    """One computation in progress; waiters block on ``done``."""

    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: bytes | None = None
        self.error: BaseException | None = None


class AnswerCache:
    """Serialised answers keyed by question and read-model position (LRU, single flight)."""

    def __init__(self, max_entries: int = 512, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, bytes] = OrderedDict()
        self._flights: dict[Key, _Flight] = {}
        self._lock = threading.Lock()
        self._bytes = 0
        self._newest = -1
        self._hits = self._misses = self._shared = self._evictions = 0

    def answer(self, question: Question, position: int, compute: Callable[[], bytes]) -> bytes:
        """The answer to ``question`` at ``position``: kept, being computed, or computed now.

        ``compute`` must answer at ``position`` or later (it runs after the caller observed
        ``position``, and read models only move forward).
        """
        key: Key = (question, position)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return found
            flight = self._flights.get(key)
            if flight is None:
                flight = self._flights[key] = _Flight()
                self._misses += 1
                leader = True
            else:
                self._shared += 1
                leader = False
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.value is not None
            return flight.value
        try:
            value = compute()
        except BaseException as e:
            flight.error = e
            raise
        else:
            flight.value = value
            self._keep(key, value)
            return value
        finally:
            with self._lock:
                self._flights.pop(key, None)
            flight.done.set()

    def _keep(self, key: Key, value: bytes) -> None:
        size = len(value)
        with self._lock:
            position = key[1]
            if position > self._newest:
                self._newest = position
                for old in [k for k in self._entries if k[1] < position]:
                    self._drop(old)
            elif position < self._newest:
                return  # a request that raced a projection: nobody will ask for it again
            if size > self.max_bytes // 4 or key in self._entries:
                return
            self._entries[key] = value
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))
                self._evictions += 1

    def _drop(self, key: Key) -> None:
        self._bytes -= len(self._entries.pop(key))

    def clear(self) -> None:
        """Forget every answer (counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._newest = -1

    def stats(self) -> AnswerStats:
        with self._lock:
            return AnswerStats(self._hits, self._misses, self._shared, self._evictions,
                               len(self._entries), self._bytes)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# ---------------------------------------------------------------------- over HTTP

CACHE_CONTROL = "private, no-cache"
"""Keep it (per user: answers need a token once auth is enforced) but revalidate each time:
any recorded event may change it."""
CACHED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the ``If-None-Match`` tag is the current answer's."},
}
"""The OpenAPI ``responses`` every route answered through :func:`answer` declares."""


def etag_of(body: bytes) -> str:
    """A strong validator: equal tags mean byte-equal answers."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def answer(request: Request, question: Question, compute: Callable[[Runtime], Any]) -> Response:
    """The JSON answer to ``question``, from the app's answer cache or ``compute(runtime)``;
    304 when the request's ``If-None-Match`` names it.

    The cache key is the question and the position :class:`Freshness` observed, so the
    answer includes at least every event recorded before the request arrived.
    """
    runtime = get_runtime(request)
    freshness: Freshness = request.app.state.freshness
    answers: AnswerCache = request.app.state.answers
    position = freshness.observe()

    def computed() -> bytes:
        freshness.confirm(position)
        return orjson.dumps(compute(runtime))

    body = answers.answer(question, position, computed)
    etag = etag_of(body)
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": "Authorization"}
    if matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


__all__ = ["CACHED", "CACHE_CONTROL", "AnswerCache", "AnswerStats", "Key", "Question", "answer", "etag_of",
           "matches"]
