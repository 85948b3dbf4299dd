"""allsuse.cache.TTLCache against cachetools.TTLCache: same keys, values, capacity and TTL.

Both caches are driven by the same C-level loop (`deque(map(...), maxlen=0)`), so the figures compare
the caches, not two Python loops. Rows:
- get (hit): every key present; a batch reads each once.
- put (new key, evicting): a full cache takes keys it does not hold, so each put inserts and evicts
  the least recently used entry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import cachetools

from allsuse.cache import TTLCache
from bench.harness import Row, best_of

OPS = 100_000
TTL = 3600.0
TARGET = ">= 3x"


def _drain(it: Iterable[object]) -> None:
    deque(it, maxlen=0)


def _keys(n: int) -> list[bytes]:
    return [b"order:%08d" % i for i in range(n)]


def _get_row(keys: list[bytes], value: bytes) -> Row:
    ours = TTLCache(len(keys), TTL)
    theirs: cachetools.TTLCache[bytes, bytes] = cachetools.TTLCache(maxsize=len(keys), ttl=TTL)
    for k in keys:
        ours.put(k, value)
        theirs[k] = value
    assert all(ours.get(k) == value for k in keys[:100])
    assert all(theirs.get(k) == value for k in keys[:100])
    our_get: Callable[[bytes], object] = ours.get
    their_get: Callable[[bytes], object] = theirs.get
    a = best_of(lambda: _drain(map(our_get, keys)), repeat=5)
    b = best_of(lambda: _drain(map(their_get, keys)), repeat=5)
    return Row("cache get (hit)", a, "cachetools.TTLCache.get", b, TARGET, per="per op", count=len(keys))


def _put_row(keys: list[bytes], value: bytes) -> Row:
    capacity = len(keys) // 10
    values = [value] * len(keys)
    ours = TTLCache(capacity, TTL)
    theirs: cachetools.TTLCache[bytes, bytes] = cachetools.TTLCache(maxsize=capacity, ttl=TTL)
    our_put = ours.put
    their_put = theirs.__setitem__
    a = best_of(lambda: _drain(map(our_put, keys, values)), repeat=5)
    b = best_of(lambda: _drain(map(their_put, keys, values)), repeat=5)
    assert len(ours) == len(theirs) == capacity
    return Row(
        "cache put (new key, evicting)",
        a,
        "cachetools.TTLCache[k] = v",
        b,
        TARGET,
        per="per op",
        count=len(keys),
    )


def run() -> list[Row]:
    keys = _keys(OPS)
    value = bytes(range(64))
    return [_get_row(keys, value), _put_row(keys, value)]
