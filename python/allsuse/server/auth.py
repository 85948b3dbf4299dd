"""API-key authentication: the key from the call's metadata, checked against the store, cached.

A client sends `authorization: Bearer <key_id>.<secret>` or `x-api-key: <key_id>.<secret>` (the token printed by
`allsuse keys create`). The store keeps only a salted scrypt hash, so one check costs tens of milliseconds by
design; `KeyVerifier` caches the answer for `cache_seconds` (keyed by a SHA-256 of the token, never the token
itself), and concurrent calls with the same uncached token share one check. A revoked key therefore stops
working within `cache_seconds` (immediately for a server that never saw it).

Hashing is what an attacker with wrong secrets would make the server do, so a check that is not cached first
asks the `FailedAuthLimiter` (per peer host and per key id): when either has seen too many failures the call is
refused with RESOURCE_EXHAUSTED (RateLimitedError) before any hashing. An unknown key id costs no hashing at all
(the store looks the id up first).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from allsuse.errors import InvalidInputError
from allsuse.server.errors import RateLimitedError
from allsuse.server.ratelimit import FailedAuthLimiter
from allsuse.server.request import Principal
from allsuse.store import Store

MAX_TOKEN_LENGTH = 512


def token_from_metadata(metadata: Iterable[Any] | None) -> str | None:
    """The API token of a call: `authorization: Bearer <token>` first, else `x-api-key`; None if neither."""
    bearer: str | None = None
    api_key: str | None = None
    for item in metadata or ():
        key, value = item[0], item[1]
        if isinstance(value, bytes):
            continue
        if key == "authorization" and bearer is None:
            scheme, _, rest = value.strip().partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                bearer = rest.strip()
        elif key == "x-api-key" and api_key is None and value.strip():
            api_key = value.strip()
    token = bearer if bearer is not None else api_key
    if token is None or len(token) > MAX_TOKEN_LENGTH:
        return None
    return token


class KeyVerifier:
    """Turns a token into a Principal (or None) through the store, with a bounded time-limited cache."""

    def __init__(
        self,
        store: Store,
        cache_seconds: float = 30.0,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        failures: FailedAuthLimiter | None = None,
    ) -> None:
        if not cache_seconds >= 0:
            raise InvalidInputError.of("cache_seconds", f"must be >= 0, got {cache_seconds!r}")
        self._store = store
        self._ttl = float(cache_seconds)
        self._max = max_entries
        self._clock = clock
        self._cache: dict[bytes, tuple[float, Principal | None]] = {}
        self._pending: dict[bytes, asyncio.Task[Principal | None]] = {}
        self._failures = failures
        self.checks = 0

    def cached(self, token: str) -> Principal | Literal[False] | None:
        """The cached answer for `token` (a Principal, or None for a key known to be invalid), or False when there
        is none: the hot path of every call with a key, without a coroutine."""
        hit = self._cache.get(hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest())
        if hit is not None and hit[0] > self._clock():
            return hit[1]
        return False

    async def principal(self, token: str, peer: str = "") -> Principal | None:
        """The principal of a valid, unrevoked key; None for anything else. `peer` is the caller's host (for the
        failed-authentication limit: RateLimitedError when it, or the token's key id, failed too often)."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        now = self._clock()
        hit = self._cache.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        task = self._pending.get(digest)
        if task is None:
            key_id = token.partition(".")[0]
            if self._failures is not None:
                wait = self._failures.begin(peer, key_id)
                if wait > 0:
                    raise RateLimitedError(f"too many failed authentications: retry in {wait:.3f} s", wait)
            # Its own task: a caller that is cancelled (client gone) does not cancel the others' check.
            task = asyncio.get_running_loop().create_task(self._check(digest, token, now, peer, key_id))
            self._pending[digest] = task
            task.add_done_callback(_retrieve)
        return await asyncio.shield(task)

    async def _check(self, digest: bytes, token: str, now: float, peer: str, key_id: str) -> Principal | None:
        try:
            self.checks += 1
            info = await self._store.aio.authenticate(token)
        finally:
            self._pending.pop(digest, None)
        if info is not None and self._failures is not None:
            self._failures.succeeded(peer, key_id)
        principal = None if info is None else Principal(key_id=info.key_id, role=info.role)
        if self._ttl > 0:
            if len(self._cache) >= self._max:
                self._evict(now)
            self._cache[digest] = (now + self._ttl, principal)
        return principal

    def forget(self) -> None:
        """Drops every cached answer (e.g. after revoking a key in this process)."""
        self._cache.clear()

    def _evict(self, now: float) -> None:
        for digest in [d for d, (expires, _) in self._cache.items() if expires <= now]:
            del self._cache[digest]
        while len(self._cache) >= self._max:
            self._cache.pop(next(iter(self._cache)))


def _retrieve(task: asyncio.Task[Principal | None]) -> None:
    if not task.cancelled():
        task.exception()  # marks a failure as seen when every waiter has gone


__all__ = ["MAX_TOKEN_LENGTH", "KeyVerifier", "token_from_metadata"]
