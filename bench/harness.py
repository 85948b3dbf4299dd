"""What every benchmark module shares: a timer and the row it reports.

Each row pairs an allsuse operation with a baseline measured in the same run on the same data,
so the ratio means something on a shared, noisy machine where absolute times drift.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One line of the benchmark table."""

    operation: str
    allsuse_seconds: float
    baseline: str
    baseline_seconds: float
    target: str
    # How to read the figures: per call ("per call") or per element ("per option", ...).
    per: str = "per call"
    count: int = 1

    @property
    def ratio(self) -> float:
        """Baseline time / allsuse time: how many times faster allsuse is."""
        return self.baseline_seconds / self.allsuse_seconds if self.allsuse_seconds > 0 else float("inf")


def best_of(fn: Callable[[], object], *, repeat: int = 7, number: int = 1, warmup: int = 1) -> float:
    """Median seconds per call of `fn` over `repeat` timed batches of `number` calls, after warm-up."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def human(seconds: float) -> str:
    """A time with a readable unit."""
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.2f} us"
    return f"{seconds * 1e9:.0f} ns"
