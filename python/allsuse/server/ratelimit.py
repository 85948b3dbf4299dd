"""Per-key token buckets: `rate_per_second` tokens refill continuously up to `burst`; a call takes one.

A call finding its bucket empty is refused with RESOURCE_EXHAUSTED (and a `retry-after-ms` trailer) rather than
queued: the client decides whether to wait. Buckets of idle keys are dropped once `max_keys` are held (an idle
bucket is full, so dropping it changes nothing).

`FailedAuthLimiter` uses the same buckets for authentication attempts, by peer host and by key id, before a
secret is hashed: an attempt takes a token from both, a success gives them back, so only failures use them up.
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

    def wait(self, key: str) -> float:
        """Seconds until `key`'s bucket has a token (0.0 if it has one now); takes nothing."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def refund(self, key: str) -> None:
        """Gives one token back to `key`'s bucket (never above `burst`)."""
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate + 1.0)
            if tokens >= self.burst:
                self._buckets.pop(key, None)  # a full bucket is the same as none
            else:
                self._buckets[key] = (tokens, now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _prune(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items() if tokens + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) >= self._max_keys:  # all busy: drop the oldest entries
            self._buckets.pop(next(iter(self._buckets)))


class FailedAuthLimiter:
    """Authentication attempts that may fail, limited per peer host and per key id before any hashing.

    `begin(peer, key_id)` takes a token from both buckets (0.0) or, if either is empty, takes nothing and returns
    the seconds to wait; `succeeded(peer, key_id)` gives both back. So a peer (or a key id) that keeps failing is
    refused after `burst` failures and then gets `rate_per_second` attempts a second, while valid keys never
    run the buckets down.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._buckets = TokenBucketLimiter(rate_per_second, burst, max_keys=max_keys, clock=clock)
        self._lock = threading.Lock()

    def begin(self, peer: str, key_id: str) -> float:
        """0.0 when the attempt may run (a token taken from the peer's and the key id's bucket), else the seconds
        until it may (nothing taken)."""
        peer_key, id_key = f"peer:{peer}", f"key:{key_id}"
        with self._lock:
            wait = max(self._buckets.wait(peer_key), self._buckets.wait(id_key))
            if wait > 0:
                return wait
            self._buckets.acquire(peer_key)
            self._buckets.acquire(id_key)
            return 0.0

    def succeeded(self, peer: str, key_id: str) -> None:
        """The attempt begun for (peer, key_id) was a valid key: its tokens go back."""
        with self._lock:
            self._buckets.refund(f"peer:{peer}")
            self._buckets.refund(f"key:{key_id}")


__all__ = ["FailedAuthLimiter", "TokenBucketLimiter"]
