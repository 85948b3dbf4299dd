"""An in-process LRU cache of bytes with a time-to-live, implemented in the compiled core.

`TTLCache(capacity, ttl_seconds)` is the core's class itself (no Python wrapper, so each call costs one
native call): keys and values are `bytes`; `get` returns the value or None and counts a hit or a miss;
`put(key, value, ttl_seconds=None)` stores with the default or a per-entry TTL, evicting the least
recently used entry when a new key meets a full cache; `delete`, `clear`, `len()`, `key in cache`
(which counts nothing) and `stats()` -> {hits, misses, evictions, expirations, size}. Expired entries are
dropped on the next operation, so `len()` counts live entries only. Safe to share between threads.
Bad arguments raise `allsuse.errors.InvalidInputError` naming them.
"""

from __future__ import annotations

from allsuse._core import TTLCache

__all__ = ["TTLCache"]
