"""Trustee answers kept per read-model position, read freshness and remembered tokens.

Over a real server, on SQLite and PostgreSQL (the ledger of ``tests/integration/test_http.py``):

- A repeated question is answered from the cache; a write by another runtime or process is
  in the very next answer, whether or not the writer projects it (answers are keyed by the
  read-model position a read observed after catching up with the event log).
- A read that finds events not yet projected waits for the process that recorded them to
  project them, rather than racing it.
- Questions that differ in any resolved parameter (``as_of``, defaulted to today,
  ``known_at``, filters, grouping) never share an answer.
- The cache keeps at most its bound, least recently used out; concurrent misses compute once.
- A verified token is remembered for reads for a bounded time: once revoked it is refused
  within it; writes check the database every time, so revocation stops them at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

import httpx
import pytest

from permanence import tokens as auth
from permanence.config import Settings
from permanence.http.answers import AnswerCache
from permanence.http.app import create_app
from permanence.runtime import Runtime
from projections import queries
from tests.support import build_ledger, get, running

CLI = [sys.executable, "-c", "from permanence.cli import main; main()"]


def pool_names(client: httpx.Client) -> list[str]:
    return [p["pool"] for p in get(client, "/pools")]


def counters(client: httpx.Client) -> dict[str, int]:
    """The server's answer-cache counters, from ``/healthz``."""
    answers: dict[str, int] = get(client, "/healthz")["answers"]
    return answers


def change(client: httpx.Client, action: Callable[[], Any]) -> tuple[Any, dict[str, int]]:
    """Run ``action`` and return its result with how each counter moved meanwhile."""
    before = counters(client)
    result = action()
    after = counters(client)
    return result, {k: after[k] - before[k] for k in ("hits", "misses", "shared")}


# ---------------------------------------------------------------------- over a real server


@pytest.mark.slow
def test_a_repeated_question_is_answered_from_the_cache(db_url: str, runtime: Runtime) -> None:
    build_ledger(runtime)
    with running(create_app(Settings(db=db_url))) as client:
        params = {"as_of": "2028-06-01", "by": "program"}
        first, moved = change(client, lambda: client.get("/liabilities", params=params))
        assert first.status_code == 200
        assert moved == {"hits": 0, "misses": 1, "shared": 0}
        again, moved = change(client, lambda: client.get("/liabilities", params=params))
        assert moved == {"hits": 1, "misses": 0, "shared": 0}
        assert again.content == first.content
        assert again.headers["content-type"] == "application/json"
        # the kept answer is the query's answer
        assert first.json() == queries.liabilities(runtime.engine, date(2028, 6, 1), by="program")

        # concurrent identical questions at a new position: computed once
        runtime.app.issue(program="acr", project="P3", quantity=500, buffer=50,
                          on=date(2026, 1, 1))
        with ThreadPoolExecutor(8) as pool:
            bodies, moved = change(client, lambda: list(pool.map(
                lambda _: client.get("/buffer", params={"as_of": "2028-06-01"}).content,
                range(8))))
        assert len(set(bodies)) == 1
        assert moved["misses"] == 1 and moved["hits"] + moved["shared"] == 7


@pytest.mark.slow
def test_writes_elsewhere_are_in_the_next_answer(db_url: str, runtime: Runtime) -> None:
    with running(create_app(Settings(db=db_url))) as client:
        def balance() -> int:
            value: int = get(client, "/buffer", as_of="2030-01-01")["balance"]
            return value

        assert balance() == 0
        assert balance() == 0  # kept
        assert pool_names(client) == []

        # another runtime in this process, which projects its own writes
        runtime.app.issue(program="icvcm-ccp", project="A", quantity=80_000, buffer=20_000,
                          on=date(2025, 1, 1))
        assert balance() == 20_000
        assert pool_names(client) == ["icvcm-ccp"]

        # a writer that never projects: the server projects the events itself
        silent = Runtime(Settings(db=db_url), catch_up_on_write=False)
        try:
            silent.app.issue(program="car-forest", project="B", quantity=10_000, buffer=2_000,
                             on=date(2026, 3, 1))
        finally:
            silent.close()
        assert balance() == 22_000
        assert get(client, "/liabilities", as_of="2030-01-01")["exposure"] == 90_000
        assert get(client, "/healthz")["projection_lag"] == 0

        # another process (the CLI, which projects what it records)
        done = subprocess.run(
            [*CLI, "issue", "--program", "acr", "--project", "C", "--quantity", "1000",
             "--buffer", "300", "--on", "2027-01-01"],
            env={**os.environ, "PERMANENCE_DB": db_url}, capture_output=True, text=True,
            timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert balance() == 22_300
        assert pool_names(client) == ["acr", "car-forest", "icvcm-ccp"]
        assert get(client, "/programs") == ["acr", "car-forest", "icvcm-ccp"]
        assert get(client, "/runoff", as_of="2030-01-01")["total"] == 91_000


@pytest.mark.slow
def test_a_read_waits_for_the_writer_to_project_its_own_events(db_url: str) -> None:
    app = create_app(Settings(db=db_url))
    with running(app) as client:
        assert get(client, "/buffer", as_of="2030-01-01")["balance"] == 0
        app.state.freshness.grace = 30.0  # plenty: this read must not project the events
        writer = Runtime(Settings(db=db_url), catch_up_on_write=False)
        try:
            writer.app.issue(program="icvcm-ccp", project="A", quantity=80_000, buffer=20_000,
                             on=date(2025, 1, 1))
            projected: list[int] = []
            later = threading.Timer(0.3, lambda: projected.append(writer.refresh()))
            began = time.monotonic()
            later.start()
            # recorded before the request: the answer must include it
            assert get(client, "/buffer", as_of="2030-01-01")["balance"] == 20_000
            later.join()
        finally:
            writer.close()
        assert projected == [1]  # the writer projected its event; the server did not race it
        assert time.monotonic() - began >= 0.3


@pytest.mark.slow
def test_different_questions_do_not_share_answers(db_url: str, runtime: Runtime) -> None:
    ledger = build_ledger(runtime)
    with running(create_app(Settings(db=db_url))) as client:
        questions: list[tuple[str, dict[str, str]]] = [
            ("/liabilities", {"as_of": "2027-06-15"}),
            ("/liabilities", {"as_of": "2028-06-01"}),
            ("/liabilities", {"as_of": "2028-06-01", "known_at": ledger.known_after_a}),
            ("/liabilities", {"as_of": "2028-06-01", "program": "car-forest"}),
            ("/liabilities", {"as_of": "2028-06-01", "project": "Mangrove A"}),
            ("/liabilities", {"as_of": "2028-06-01", "pool": "car-forest"}),
            ("/liabilities", {"as_of": "2028-06-01", "by": "program"}),
            ("/liabilities", {"as_of": "2028-06-01", "by": "pool"}),
            ("/buffer", {"as_of": "2028-06-01"}),
            ("/buffer", {"as_of": "2027-06-15"}),
            ("/buffer", {"as_of": "2028-06-01", "pool": "icvcm-ccp"}),
            ("/buffer", {"as_of": "2026-01-01", "known_at": ledger.known_after_a}),
            ("/runoff", {"as_of": "2028-06-01"}),
            ("/runoff", {"as_of": "2065-01-01"}),
            ("/runoff", {"as_of": "2028-06-01", "pool": "car-forest"}),
        ]
        answers, moved = change(client, lambda: [get(client, p, **q) for p, q in questions])
        assert moved == {"hits": 0, "misses": len(questions), "shared": 0}
        # each is the answer to its own question
        by_question = dict(zip(((p, tuple(sorted(q.items()))) for p, q in questions), answers,
                               strict=True))
        assert len({repr(a) for a in answers}) == len(answers)
        assert by_question[("/liabilities", (("as_of", "2027-06-15"),))]["due"] == {
            "proponent": 0, "pool": 1_500, "fund": 0, "jurisdiction": 0, "insurer": 0}
        assert by_question[("/liabilities", (("as_of", "2028-06-01"),))]["due"] == {
            "proponent": 1_000, "pool": 0, "fund": 0, "jurisdiction": 0, "insurer": 0}
        known = by_question[("/liabilities", (("as_of", "2028-06-01"),
                                              ("known_at", ledger.known_after_a)))]
        assert (known["exposure"], known["due_total"]) == (80_000, 0)
        assert by_question[("/buffer", (("as_of", "2028-06-01"), ("pool", "icvcm-ccp")))][
            "balance"] == 20_000
        assert by_question[("/runoff", (("as_of", "2028-06-01"), ("pool", "car-forest")))][
            "total"] == 10_000

        # the default as_of is today (PERMANENCE_TODAY here): the same question as naming it
        today = Settings().today_source()().isoformat()
        defaulted, moved = change(client, lambda: get(client, "/buffer"))
        assert moved["misses"] == 1 and defaulted["as_of"] == today
        named, moved = change(client, lambda: get(client, "/buffer", as_of=today))
        assert moved == {"hits": 1, "misses": 0, "shared": 0} and named == defaulted

        # known_at is resolved too: a bare date is the end of that day, UTC ...
        end_of_day = get(client, "/liabilities", as_of="2030-01-01", known_at="2030-01-01")
        same, moved = change(client, lambda: get(client, "/liabilities", as_of="2030-01-01",
                                                 known_at="2030-01-01T23:59:59.999999Z"))
        assert moved["hits"] == 1 and same == end_of_day
        # ... and so is the same instant written in another zone: record times are UTC
        zoned, moved = change(client, lambda: get(client, "/liabilities", as_of="2030-01-01",
                                                  known_at="2030-01-02T00:59:59.999999+01:00"))
        assert moved["hits"] == 1 and zoned == end_of_day
        assert end_of_day["known_at"] == "2030-01-01T23:59:59.999999+00:00"


@pytest.mark.slow
def test_the_cache_keeps_at_most_its_bound(db_url: str, runtime: Runtime) -> None:
    build_ledger(runtime)
    cache = AnswerCache(max_entries=3)
    with running(create_app(Settings(db=db_url), answers=cache)) as client:
        days = ["2026-01-01", "2027-01-01", "2028-01-01", "2029-01-01", "2030-01-01"]
        for day in days:
            get(client, "/buffer", as_of=day)
        stats = counters(client)
        assert (stats["entries"], stats["evictions"], stats["misses"]) == (3, 2, 5)
        _, moved = change(client, lambda: get(client, "/buffer", as_of=days[-1]))
        assert moved["hits"] == 1  # recently used: kept
        _, moved = change(client, lambda: get(client, "/buffer", as_of=days[0]))
        assert moved["misses"] == 1  # least recently used: evicted, computed again
        assert len(cache) == 3


@pytest.mark.slow
def test_a_revoked_token_is_refused_within_the_recheck_time(db_url: str, runtime: Runtime) -> None:
    token, _ = auth.create_token(runtime.engine, "dashboard", "trustee")
    other, _ = auth.create_token(runtime.engine, "other", "trustee")
    with running(create_app(Settings(db=db_url))) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/buffer", headers=headers).status_code == 200  # verified, remembered
        assert client.get("/buffer").status_code == 401
        assert client.get("/buffer", headers={
            "Authorization": f"Bearer {auth.new_token()}"}).status_code == 401

        auth.revoke_token(runtime.engine, "dashboard")
        revoked_at = time.monotonic()
        deadline = revoked_at + auth.TOKEN_RECHECK_SECONDS + 5
        while client.get("/buffer", headers=headers).status_code != 401:
            assert time.monotonic() < deadline, "a revoked token kept working"
            time.sleep(0.05)
        assert time.monotonic() - revoked_at <= auth.TOKEN_RECHECK_SECONDS + 1
        for _ in range(3):  # refused for good: failures are not remembered
            assert client.get("/buffer", headers=headers).status_code == 401
        # writes never rely on a remembered token: refused at once
        writer, _ = auth.create_token(runtime.engine, "registry-1", "registry")
        write = {"Authorization": f"Bearer {writer}"}
        body = {"program": "icvcm-ccp", "project": "P", "quantity": 10, "buffer": 2,
                "on": "2025-01-01"}
        assert client.post("/vintages", json=body, headers=write).status_code == 201
        auth.revoke_token(runtime.engine, "registry-1")
        assert client.post("/vintages", json=body, headers=write).status_code == 401
        # other tokens are unaffected
        assert client.get("/buffer", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_a_token_store_remembers_successes_for_a_bounded_time(sqlite_url: str) -> None:
    rt = Runtime(Settings(db=sqlite_url))
    try:
        token, _ = auth.create_token(rt.engine, "reg", "registry")
        store = auth.TokenStore(rt.engine, recheck_seconds=0.3)
        assert store.remembered(token) is None  # never verified
        assert store.verify(token) == auth.Principal("reg", "registry")
        auth.revoke_token(rt.engine, "reg")
        assert store.remembered(token) == auth.Principal("reg", "registry")
        time.sleep(0.35)
        assert store.remembered(token) is None
        assert store.verify(token) is None  # checked again: revoked

        fresh, _ = auth.create_token(rt.engine, "reg-2", "registry")
        assert store.verify(fresh) is not None
        auth.revoke_token(rt.engine, "reg-2")
        store.forget()
        assert store.verify(fresh) is None

        bounded = auth.TokenStore(rt.engine, max_remembered=2)
        tokens = [auth.create_token(rt.engine, f"t{i}", "trustee")[0] for i in range(3)]
        for t in tokens:
            assert bounded.verify(t) is not None
        assert bounded.remembered(tokens[0]) is None  # least recently verified: forgotten
        assert all(bounded.remembered(t) is not None for t in tokens[1:])
    finally:
        rt.close()


# ---------------------------------------------------------------------- the cache itself


def test_cache_bounds_entries_and_bytes() -> None:
    cache = AnswerCache(max_entries=3)
    computed: list[str] = []

    def ask(name: str, size: int = 5, position: int = 1, into: AnswerCache = cache) -> bytes:
        def compute() -> bytes:
            computed.append(name)
            return name.encode().ljust(size, b".")
        return into.answer((name,), position, compute)

    for name in "abcd":
        ask(name)
    assert len(cache) == 3 and cache.stats().evictions == 1
    ask("b")  # a hit: b is now the most recently used
    ask("e")
    assert computed == ["a", "b", "c", "d", "e"]  # c was evicted, not b
    ask("b")
    ask("c")
    assert computed[-1] == "c"
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.entries) == (2, 6, 3)

    by_size = AnswerCache(max_entries=100, max_bytes=40)
    for name in "vwxyz":
        ask(name, size=10, into=by_size)
    assert by_size.stats().bytes <= 40 and len(by_size) == 4
    ask("big", size=11, into=by_size)  # over a quarter of the bytes: answered, not kept
    assert ask("big", size=11, into=by_size) == b"big........"
    assert computed[-2:] == ["big", "big"] and len(by_size) == 4


def test_cache_keys_on_the_position_and_drops_older_positions() -> None:
    cache = AnswerCache()
    calls: list[int] = []

    def at(position: int) -> bytes:
        def compute() -> bytes:
            calls.append(position)
            return str(position).encode()
        return cache.answer(("q",), position, compute)

    assert at(5) == b"5" and at(5) == b"5"
    assert at(6) == b"6"  # a newer position never reuses an older answer
    assert calls == [5, 6]
    assert len(cache) == 1  # the answer at 5 was dropped
    assert at(5) == b"5" and calls == [5, 6, 5]  # a straggler at 5 computes, and is not kept
    assert len(cache) == 1


def test_concurrent_misses_compute_once() -> None:
    cache = AnswerCache()
    release = threading.Event()
    calls: list[int] = []

    def compute() -> bytes:
        calls.append(1)
        release.wait(10)
        return b"answer"

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.answer, ("q", None), 7, compute) for _ in range(8)]
        deadline = time.monotonic() + 10
        while cache.stats().shared < 7:
            assert time.monotonic() < deadline, "the other requests never queued"
            time.sleep(0.005)
        release.set()
        results = [f.result(timeout=10) for f in futures]
    assert results == [b"answer"] * 8
    assert calls == [1]
    stats = cache.stats()
    assert (stats.misses, stats.shared, stats.hits) == (1, 7, 0)
    assert stats.hit_ratio == pytest.approx(7 / 8)


def test_a_failed_computation_is_shared_but_not_kept() -> None:
    cache = AnswerCache()
    release = threading.Event()
    attempts: list[int] = []

    def failing() -> bytes:
        attempts.append(1)
        release.wait(10)
        raise RuntimeError("the database went away")

    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(cache.answer, ("q",), 1, failing) for _ in range(3)]
        deadline = time.monotonic() + 10
        while cache.stats().shared < 2:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        release.set()
        for f in futures:
            with pytest.raises(RuntimeError, match="went away"):
                f.result(timeout=10)
    assert attempts == [1]
    assert cache.answer(("q",), 1, lambda: b"ok") == b"ok"  # tried again, not a kept failure
    assert len(cache) == 1
