"""Read API under load: requests/s and latency while another process ingests.

A bounded loopback test. One uvicorn server on 127.0.0.1 (a separate process, auth enforced
with a registry token, access log off as behind a reverse proxy) serves ``GET
/liabilities?by=program``, ``GET /buffer`` and ``GET /vintages/{id}`` to 16 keep-alive
asyncio connections (``--client httpx`` for an ``httpx.AsyncClient`` instead), while a third process issues vintages in ``issue_many`` batches (projecting them
as it goes). Reports requests/s, p50/p95/p99 latency and errors per endpoint and overall,
the ingest rate, and how the server's answer cache did in each phase (from ``/healthz``:
``hit_ratio`` is the share of trustee answers served without computing them, warm-up
requests included; ``computed`` how many were computed). Target on a 2-core machine: at least 500 reads/s, p95 at most 50 ms,
no errors.

Usage: ``.venv/bin/python bench/load.py [--quick] [--db URL]``; ``run(quick)`` returns the
rows. Bounded: at most :data:`MAX_SECONDS` in all, and a fixed number of requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

from common import postgres_available, postgres_store, sqlite_store, vintage_specs

HOST = "127.0.0.1"  # loopback only
MAX_SECONDS = 60.0
TARGET_RPS = 500.0
TARGET_P95_MS = 50.0

SERVER = textwrap.dedent(
    """
    import sys, uvicorn
    from permanence.config import Settings
    from permanence.http.app import create_app
    app = create_app(Settings(db=sys.argv[1]))
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False)
    """
)

INGESTER = textwrap.dedent(
    """
    import sys, time
    sys.path.append(sys.argv[4])
    from common import vintage_specs
    from permanence.config import Settings
    from permanence.runtime import Runtime
    db, batch, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rt = Runtime(Settings(db=db))  # projects its own writes, as a writer process does
    print("READY", flush=True)
    sys.stdin.readline()
    issued, began = 0, time.perf_counter()
    try:
        while True:
            rt.app.issue_many(vintage_specs(batch, start + issued))
            issued += batch
            print(issued, time.perf_counter() - began, flush=True)
            time.sleep(0.25)
    finally:
        rt.close()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _seed(db: str, n: int) -> tuple[list[str], str]:
    from permanence import tokens as auth
    from permanence.config import Settings
    from permanence.runtime import Runtime

    rt = Runtime(Settings(db=db), catch_up_on_write=False)
    try:
        ids: list[str] = []
        for i in range(0, n, 10_000):
            ids += rt.app.issue_many(vintage_specs(min(10_000, n - i), i))
        rt.refresh()
        token, _ = auth.create_token(rt.engine, "load-bench", "registry")
    finally:
        rt.close()
    return ids, token


def _wait_ready(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    import httpx

    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the server did not start in time")


async def _fetch(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One keep-alive HTTP/1.1 exchange; returns the status (the body is read, not parsed)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def _load(port: int, token: str, ids: list[str], seconds: float, max_requests: int,
                concurrency: int, client: str) -> dict[str, list[tuple[float, bool]]]:
    """``concurrency`` keep-alive connections sending the endpoints in turn.

    ``raw``: asyncio streams writing the request bytes, so that the load generator, which
    shares the machine's two cores with the server and the ingester, costs little CPU.
    ``httpx``: an ``httpx.AsyncClient`` (several times the client CPU per request).
    """
    rng = random.Random(7)
    paths = {
        "GET /liabilities?by=program": lambda: "/liabilities?by=program",
        "GET /buffer": lambda: "/buffer",
        "GET /vintages/{id}": lambda: f"/vintages/{rng.choice(ids)}",
    }
    names = list(paths)
    samples: dict[str, list[tuple[float, bool]]] = {n: [] for n in names}
    sent = 0
    stop = time.perf_counter() + seconds

    def request(path: str) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n").encode()

    async def raw_worker() -> None:
        nonlocal sent
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for name in names:  # warm up (not measured)
                await _fetch(reader, writer, request(paths[name]()))
            while sent < max_requests and time.perf_counter() < stop:
                name = names[sent % len(names)]
                sent += 1
                began = time.perf_counter()
                try:
                    ok = await _fetch(reader, writer, request(paths[name]())) == 200
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
                samples[name].append((time.perf_counter() - began, ok))
        finally:
            writer.close()

    if client == "raw":
        await asyncio.gather(*(raw_worker() for _ in range(concurrency)))
        return samples

    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", headers=headers,
                                 limits=limits, timeout=10) as http:
        for name in names:
            await http.get(paths[name]())

        async def httpx_worker() -> None:
            nonlocal sent
            while sent < max_requests and time.perf_counter() < stop:
                name = names[sent % len(names)]
                sent += 1
                began = time.perf_counter()
                try:
                    ok = (await http.get(paths[name]())).status_code == 200
                except httpx.HTTPError:
                    ok = False
                samples[name].append((time.perf_counter() - began, ok))

        await asyncio.gather(*(httpx_worker() for _ in range(concurrency)))
    return samples


def _row(name: str, samples: list[tuple[float, bool]], seconds: float) -> dict[str, Any]:
    latencies = sorted(t * 1000 for t, _ in samples)
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else latencies * 99
    return {
        "benchmark": "load",
        "endpoint": name,
        "requests": len(samples),
        "rps": len(samples) / seconds,
        "p50_ms": q[49],
        "p95_ms": q[94],
        "p99_ms": q[98],
        "errors": sum(1 for _, ok in samples if not ok),
    }


def _answer_stats(port: int) -> dict[str, Any]:
    """The server's answer-cache counters (``/healthz``, no token needed)."""
    import httpx

    stats: dict[str, Any] = httpx.get(f"http://{HOST}:{port}/healthz", timeout=10).json()["answers"]
    return stats


def _cache_row(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    delta = {k: after[k] - before[k] for k in ("hits", "misses", "shared")}
    asked = sum(delta.values())
    return {"hit_ratio": (delta["hits"] + delta["shared"]) / asked if asked else 0.0,
            "computed": delta["misses"]}


def _stop(proc: subprocess.Popen[Any], terminate: bool) -> None:
    if proc.poll() is None:
        if terminate:
            proc.terminate()
        else:
            proc.kill()
    proc.wait(timeout=30)


def _phase(store: str, name: str, samples: dict[str, list[tuple[float, bool]]], elapsed: float) -> list[dict[str, Any]]:
    rows = [_row(endpoint, s, elapsed) for endpoint, s in samples.items()]
    total = _row("all reads", [x for s in samples.values() for x in s], elapsed)
    total["target_met"] = (total["rps"] >= TARGET_RPS and total["p95_ms"] <= TARGET_P95_MS
                           and total["errors"] == 0)
    rows.append(total)
    return [{"benchmark": "load", "store": store, "phase": name, **row} for row in rows]


NOTE = """
`hit_ratio`: share of trustee answers (`/liabilities`, `/buffer`) served from the server's
answer cache without computing, warm-up requests included; `computed`: answers computed in
the phase (two per read-model position). While ingesting, the slowest trustee reads are
those that arrive after the ingester committed a batch and before it committed that
batch's projection: they wait for it, so that no read shows figures older than what was
recorded before it arrived.
"""


def run(quick: bool = False) -> list[dict[str, Any]]:
    """``make bench``: the benchmark on SQLite, then on PostgreSQL when a server answers."""
    rows = run_store(quick)
    if postgres_available():
        rows += run_store(quick, postgres=True)
    return rows


def run_store(quick: bool = False, db: str | None = None, client: str = "raw",
              postgres: bool = False) -> list[dict[str, Any]]:
    """Two phases on one server: reads alone, then reads while another process ingests."""
    began = time.monotonic()
    kind = "postgresql" if postgres or (db or "").startswith("postgres") else "sqlite"
    seed_n = 5_000 if quick else 20_000
    seconds = 6.0 if quick else 12.0  # per phase
    max_requests = 8_000 if quick else 15_000  # per phase
    concurrency = 16
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        store = db or stack.enter_context(postgres_store() if postgres else sqlite_store())
        ids, token = _seed(store, seed_n)
        port = _free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen([sys.executable, "-c", SERVER, store, str(port)], env=env)
        stack.callback(_stop, server, terminate=True)
        ingester = subprocess.Popen(
            [sys.executable, "-c", INGESTER, store, "500", str(seed_n), str(HERE)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        stack.callback(_stop, ingester, terminate=False)
        _wait_ready(port, server, began + 20)
        assert ingester.stdout is not None and ingester.stdin is not None
        if ingester.stdout.readline().strip() != "READY":
            raise RuntimeError("the ingester did not start")

        def measure(name: str) -> None:
            budget = (MAX_SECONDS - (time.monotonic() - began) - 5) / (2 if not rows else 1)
            before = _answer_stats(port)
            t0 = time.perf_counter()
            samples = asyncio.run(_load(port, token, ids, max(1.0, min(seconds, budget)),
                                        max_requests, concurrency, client))
            phase = _phase(kind, name, samples, time.perf_counter() - t0)
            phase[-1].update(_cache_row(before, _answer_stats(port)))
            rows.extend(phase)

        measure("reads only")
        ingester.stdin.write("go\n")
        ingester.stdin.flush()
        measure("reads while ingesting")
        ingester.kill()
        out, _ = ingester.communicate(timeout=30)
        progress = [line.split() for line in out.splitlines() if line.strip()]
        issued, ingest_s = (int(progress[-1][0]), float(progress[-1][1])) if progress else (0, 0.0)
    rows.append({"benchmark": "load", "store": kind, "phase": "reads while ingesting",
                 "endpoint": "ingest (issue_many x500, projected)", "events": issued,
                 "rate": issued / ingest_s if ingest_s else 0.0, "seconds": ingest_s,
                 "seeded": seed_n, "concurrency": concurrency, "client": client,
                 "wall_seconds": time.monotonic() - began})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 vintages, 6 s per phase")
    parser.add_argument("--db", help="Measure on this store (default: a temporary SQLite file).")
    parser.add_argument("--postgres", action="store_true",
                        help="Measure on a fresh schema of the test PostgreSQL database.")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw",
                        help="Load generator: asyncio streams (default) or httpx.AsyncClient.")
    args = parser.parse_args(argv)
    rows = run_store(args.quick, args.db, args.client, args.postgres)
    phase = None
    for r in rows:
        if r["phase"] != phase:
            phase = r["phase"]
            print(f"-- {phase}")
        if "rps" in r:
            cache = (f"  answer cache: hit ratio {r['hit_ratio']:.3f}, {r['computed']:,} computed"
                     if "hit_ratio" in r else "")
            print(f"{r['endpoint']:<30} {r['requests']:>7,} req {r['rps']:>8,.0f} req/s  "
                  f"p50 {r['p50_ms']:6.1f} ms  p95 {r['p95_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  "
                  f"errors {r['errors']}{cache}")
        else:
            print(f"{r['endpoint']:<30} {r['events']:>7,} events {r['rate']:>8,.0f} ev/s "
                  f"({r['store']}, seeded {r['seeded']:,}; {r['concurrency']} {r['client']} "
                  f"connections; {r['wall_seconds']:.1f} s in all)")
    for r in rows:
        if r["endpoint"] == "all reads":
            verdict = "met" if r["target_met"] else "NOT met"
            print(f"target (>= {TARGET_RPS:.0f} req/s, p95 <= {TARGET_P95_MS:.0f} ms, no errors), "
                  f"{r['phase']}: {verdict}")


if __name__ == "__main__":
    main()
