"""Idempotency keys of the write RPCs: a retry after a lost reply returns the first result and changes nothing.

A key belongs to (principal, portfolio, RPC): the key id of the caller (``anonymous`` with auth off), the portfolio
the request acts on, and the method. The same key sent by another principal, for another portfolio or to another
RPC is another request, so one client can never obtain another's result by guessing or reusing its key. With the
key the store keeps the SHA-256 of the request (deterministic protobuf encoding, the key itself left out) and the
first response; the same key with a different request is FAILED_PRECONDITION.

The record is written in the same store transaction as the write it answers and before it, so a committed write
always has its record, and of two concurrent requests with the same key the second is rolled back and answered
with the first one's response.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.message import Message

from allsuse.server.errors import FailedPreconditionError
from allsuse.server.request import current_principal
from allsuse.store import IdempotencyRecord, IdempotencyScope, Store
from allsuse.store.records import canonical_json, check_idempotency_key
from allsuse.store.store import Transaction as StoreTx

M = TypeVar("M", bound=Message)

Claim = Callable[[StoreTx], None]


class ReplayedError(Exception):
    """Raised inside a write unit when a concurrent request stored the same key first: the unit rolls back."""

    def __init__(self, record: IdempotencyRecord) -> None:
        super().__init__("idempotency key stored by a concurrent request")
        self.record = record


def request_digest(request: Message) -> str:
    """SHA-256 of the request without its idempotency key (deterministic encoding)."""
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField("idempotency_key")
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


def principal_id() -> str:
    """Whose keys these are: the caller's API key id, "anonymous" with auth off."""
    principal = current_principal()
    return principal.key_id if principal is not None else "anonymous"


@dataclass(frozen=True)
class KeyedCall:
    """One write request that carries an idempotency key."""

    scope: IdempotencyScope
    request_sha256: str

    @classmethod
    def of(cls, rpc: str, portfolio_id: str, request: Any) -> KeyedCall | None:
        """The keyed call of `request`, or None when it carries no key (then nothing is deduplicated)."""
        key = request.idempotency_key
        if not key:
            return None
        check_idempotency_key(key)
        return cls(IdempotencyScope(principal_id(), portfolio_id, rpc, key).checked(), request_digest(request))

    @property
    def column_key(self) -> str:
        """A unique text naming the whole scope (for a record's own unique key column, e.g. decisions)."""
        scope = self.scope
        text = canonical_json([scope.principal, scope.portfolio_id, scope.rpc, scope.key])
        return "scope:" + hashlib.sha256(text.encode("utf-8")).hexdigest()

    def answer(self, record: IdempotencyRecord, response_type: type[M]) -> M:
        """The stored first response; FAILED_PRECONDITION when the key was used for a different request."""
        if record.request_sha256 != self.request_sha256:
            raise FailedPreconditionError(
                f"idempotency_key: {self.scope.key!r} was used for a different {self.scope.rpc} request"
                f"{' on this portfolio' if self.scope.portfolio_id else ''}; send a new key for a new request"
            )
        return response_type.FromString(base64.b64decode(record.response))

    def replay(self, store: Store, response_type: type[M]) -> M | None:
        """The first response when this key was seen before in its scope, else None (the request runs)."""
        record = store.get_idempotent(self.scope)
        return None if record is None else self.answer(record, response_type)

    def claim(self, response: Message, actor: str) -> Claim:
        """A unit step storing the key with `response`; raises ReplayedError when a concurrent twin came first."""
        text = base64.b64encode(response.SerializeToString(deterministic=True)).decode("ascii")

        def step(tx: StoreTx) -> None:
            record = tx.record_idempotent(self.scope, self.request_sha256, text, actor=actor)
            if record.replayed:
                raise ReplayedError(record)

        return step


def write_once(call: KeyedCall | None, response: M, write: Callable[[Claim | None], None], *, actor: str) -> M:
    """Runs `write(claim)`, whose unit must run `claim` first (None without a key), and returns `response`; when a
    concurrent request with the same key committed first, returns that request's response instead."""
    if call is None:
        write(None)
        return response
    try:
        write(call.claim(response, actor))
    except ReplayedError as replay:
        return call.answer(replay.record, type(response))
    return response


__all__ = ["Claim", "KeyedCall", "ReplayedError", "request_digest", "write_once"]
