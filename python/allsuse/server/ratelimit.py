"""Per-key token buckets: `rate_per_second` tokens refill continuously up to `burst`; a call takes one.

A call finding its bucket empty is refused with RESOURCE_EXHAUSTED (and a `retry-after-ms` trailer) rather than
queued: the client decides whether to wait. Buckets of idle keys are dropped once `max_keys` are held (an idle
bucket is full, so dropping it changes nothing).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from allsuse.errors import InvalidInputError


class TokenBucketLimiter:
    """Token buckets by key. `acquire(key)` returns 0.0 when a token was taken, else the seconds to wait."""

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_second > 0 or rate_per_second != rate_per_second:
            raise InvalidInputError.of("rate_per_second", f"must be > 0, got {rate_per_second!r}")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise InvalidInputError.of("burst", f"must be an int >= 1, got {burst!r}")
        self.rate = float(rate_per_second)
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Takes one token from `key`'s bucket: 0.0 if there was one, else the seconds until one is back."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                if key not in self._buckets and len(self._buckets) >= self._max_keys:
                    self._prune(now)
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) >= self._max_keys:  # all busy: drop the oldest entries
            self._buckets.pop(next(iter(self._buckets)))


__all__ = ["TokenBucketLimiter"]
