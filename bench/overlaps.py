"""Serial-overlap check at registry scale (issue 14): 100,000 vintages in at most 10 s.

Builds serial ranges the way the importers store them (Gold Standard batches with their
prefix, Verra blocks in one numbering space, a few deliberate overlaps), parses them with
``parse_serial_range`` and runs ``serial_findings``, the part of ``permanence check`` that
compares serials (reading the rows is one SELECT of four columns).
"""

from __future__ import annotations

import random
import time
from typing import Any

from projections.consistency import SerialRange, parse_serial_range, serial_findings


def serials(n: int, overlaps: int, seed: int = 14) -> list[tuple[str, str]]:
    """``n`` (first, last) pairs: half Gold Standard-shaped, half Verra-shaped."""
    rng = random.Random(seed)
    out: list[tuple[str, str]] = []
    next_verra = 100_000_000
    for i in range(n):
        size = rng.randint(1, 50_000)
        if i % 2:
            prefix = f"GS1-1-IN-GS{1000 + i % 4000}-12-{2010 + i % 15}-{20000 + i}"
            out.append((f"{prefix}-1", f"{prefix}-{size}"))
        else:
            out.append((f"VCS-VCU-{next_verra}", f"VCS-VCU-{next_verra + size - 1}"))
            next_verra += size
    for k in range(overlaps):  # a block issued twice, shifted: a genuine overlap each
        first, last = out[2 * k]
        low = int(first.rsplit("-", 1)[1]) + 1
        out.append((f"VCS-VCU-{low}", last))
    return out


def measure(n: int, overlaps: int) -> dict[str, Any]:
    pairs = serials(n - overlaps, overlaps)
    start = time.perf_counter()
    ranges = []
    for i, (first, last) in enumerate(pairs):
        parsed = parse_serial_range(first, last)
        assert parsed is not None
        ranges.append(SerialRange(f"v{i}", "bench", *parsed, text=f"{first}-{last}"))
    findings = serial_findings(ranges)
    seconds = time.perf_counter() - start
    return {
        "case": "serial overlaps (parse + sweep)",
        "vintages": n,
        "findings": len(findings),
        "seconds": round(seconds, 2),
        "target": "<= 10 s at 100,000",
        "met": seconds <= 10 and n >= 100_000 or None,
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    sizes = (10_000,) if quick else (10_000, 100_000)
    return [measure(n, overlaps=n // 1000) for n in sizes]


if __name__ == "__main__":
    for row in run():
        print(row)
