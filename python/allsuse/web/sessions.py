"""Login sessions of the operator page: an opaque random cookie value, never the API key.

A session holds the principal its key authenticated as, its own CSRF token (every POST must carry it) and its
expiry (`web.session_seconds`). Only a SHA-256 of the cookie value is kept, so the table in memory does not hold
usable cookies. The key behind a session is looked up again every `recheck_seconds` (auth.cache_seconds): a
revoked key ends its sessions within that time, as it stops working over gRPC. Sessions live in the process:
a restart logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from allsuse.server.request import Principal

MAX_SESSIONS = 10_000


def _digest(cookie: str) -> bytes:
    return hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).digest()


@dataclass
class Session:
    """One login: who, the CSRF token of its forms, when it ends, when its key was last checked."""

    principal: Principal
    csrf: str
    expires: float
    checked: float

    def csrf_matches(self, token: str | None) -> bool:
        """Whether `token` is this session's CSRF token (compared in constant time)."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


class Sessions:
    """The sessions of one web component, bounded (the oldest dropped first past `max_sessions`)."""

    def __init__(
        self,
        lifetime: float,
        recheck_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.lifetime = lifetime
        self.recheck = recheck_seconds
        self._clock = clock
        self._max = max_sessions
        self._table: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._table)

    def open(self, principal: Principal) -> tuple[str, Session]:
        """A new session for `principal`: the cookie value to send (shown once) and the session."""
        now = self._clock()
        cookie = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), now + self.lifetime, now)
        self._table[_digest(cookie)] = session
        while len(self._table) > self._max:
            self._table.popitem(last=False)
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session of a cookie value, or None (unknown, or expired: then forgotten)."""
        if not cookie or len(cookie) > 128:
            return None
        digest = _digest(cookie)
        session = self._table.get(digest)
        if session is None:
            return None
        if session.expires <= self._clock():
            del self._table[digest]
            return None
        return session

    def due_for_check(self, session: Session) -> bool:
        """Whether the session's key should be looked up again (and marks it checked now)."""
        now = self._clock()
        if now - session.checked < self.recheck:
            return False
        session.checked = now
        return True

    def close(self, cookie: str | None) -> None:
        """Ends the session of a cookie value (logout)."""
        if cookie:
            self._table.pop(_digest(cookie), None)

    def close_key(self, key_id: str) -> int:
        """Ends every session of an API key (it was revoked); returns how many."""
        gone = [d for d, s in self._table.items() if s.principal.key_id == key_id]
        for digest in gone:
            del self._table[digest]
        return len(gone)


__all__ = ["MAX_SESSIONS", "Session", "Sessions"]
