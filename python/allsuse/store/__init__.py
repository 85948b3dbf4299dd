"""Durable storage for allsuse: SQLite by default (var/allsuse.db), PostgreSQL when a DSN is configured.

    from allsuse.store import Store

    with Store("var/allsuse.db") as store:
        decision = store.record_decision("req-42", {"action": "sell_put", "strike": "440"}, kind="entry")
        assert store.verify_audit().ok

Writes are group-committed and return only once durable; each appends to a hash-chained audit log in the same
transaction. See docs/store.md for the schema, the guarantees, backups and incident steps.
"""

from __future__ import annotations

from allsuse.store._db import DEFAULT_SQLITE_PATH, URL_ENV, Location, Timeouts, parse_location
from allsuse.store.audit import GENESIS_HASH, AuditEntry, AuditReport, audit_verify, entry_hash
from allsuse.store.errors import (
    StoreClosedError,
    StoreConflictError,
    StoreError,
    StoreIntegrityError,
    StoreNotFoundError,
)
from allsuse.store.group_commit import CommitStats
from allsuse.store.integrity import FullReport, Problem
from allsuse.store.migrations import LATEST_VERSION, MIGRATIONS, migrate
from allsuse.store.records import (
    ApiKeyInfo,
    IdempotencyRecord,
    IdempotencyScope,
    IssuedApiKey,
    Record,
    canonical_json,
    exact_amount,
)
from allsuse.store.store import AsyncStore, Store, Transaction

__all__ = [
    "DEFAULT_SQLITE_PATH",
    "GENESIS_HASH",
    "LATEST_VERSION",
    "MIGRATIONS",
    "URL_ENV",
    "ApiKeyInfo",
    "AsyncStore",
    "AuditEntry",
    "AuditReport",
    "CommitStats",
    "FullReport",
    "IdempotencyRecord",
    "IdempotencyScope",
    "IssuedApiKey",
    "Location",
    "Problem",
    "Record",
    "Store",
    "StoreClosedError",
    "StoreConflictError",
    "StoreError",
    "StoreIntegrityError",
    "StoreNotFoundError",
    "Timeouts",
    "Transaction",
    "audit_verify",
    "canonical_json",
    "entry_hash",
    "exact_amount",
    "migrate",
    "parse_location",
]
