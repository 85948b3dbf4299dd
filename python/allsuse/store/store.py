"""The Store: typed reads and durable, audited, group-committed writes over SQLite or PostgreSQL.

Every write goes through one writer connection in batches (see group_commit) and appends an audit entry in the
same transaction, so an acknowledged write and its audit entry are both durable or both absent. Reads use a small
pool of connections and see every write acknowledged before they started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from allsuse.errors import InvalidInputError
from allsuse.store import audit
from allsuse.store._db import Connection, Location, ReaderPool, Timeouts, dialect_for, parse_location
from allsuse.store.audit import AuditEntry, AuditReport
from allsuse.store.errors import StoreConflictError, StoreError, StoreNotFoundError
from allsuse.store.group_commit import CommitStats, GroupCommitter
from allsuse.store.integrity import BATCH_ACTION, FullReport, credential_digest, verify_full_connection
from allsuse.store.migrations import applied_versions, migrate_connection
from allsuse.store.records import (
    ApiKeyInfo,
    IdempotencyRecord,
    IdempotencyScope,
    IssuedApiKey,
    Record,
    check_id,
    check_label,
    check_optional_id,
    check_role,
    check_secret,
    check_sha256,
    decode_payload,
    encode_payload,
    exact_amount,
    hash_secret,
    new_id,
    new_secret,
    now_iso,
    payload_digest,
)

T = TypeVar("T")


@dataclass(frozen=True)
class _Entity:
    name: str
    table: str
    columns: tuple[str, ...]

    def select(self) -> str:
        cols = "".join(f", {c}" for c in self.columns)
        return f"SELECT id{cols}, created_at, updated_at, payload FROM {self.table}"

    def record(self, row: tuple[Any, ...], replayed: bool = False) -> Record:
        n = len(self.columns)
        columns = dict(zip(self.columns, row[1 : 1 + n], strict=True))
        created, updated, payload = row[1 + n], row[2 + n], row[3 + n]
        return Record(self.name, row[0], columns, decode_payload(payload), created, updated, replayed)


PORTFOLIO = _Entity("portfolio", "portfolios", ("name",))
ACCOUNT = _Entity("account", "accounts", ("portfolio_id", "kind"))
POSITION = _Entity("position", "positions", ("portfolio_id", "account_id", "status"))
TRANSACTION = _Entity("transaction", "transactions", ("portfolio_id", "account_id", "kind", "amount"))
DECISION = _Entity("decision", "decisions", ("idempotency_key", "portfolio_id", "kind", "status", "account_id"))
OUTCOME = _Entity("outcome", "outcomes", ("decision_id",))
ALERT = _Entity("alert", "alerts", ("portfolio_id", "kind", "severity", "status"))
CONVERSATION = _Entity("conversation", "conversations", ())
# The engine's state of a portfolio (id = the portfolio's id) and the version of the whole aggregate.
ENGINE_STATE = _Entity("engine_state", "engine_states", ("version",))
# An order worked on a broker (id = its client order id).
ORDER = _Entity("order", "orders", ("decision_id", "portfolio_id", "status"))
ENTITIES = {
    e.name: e
    for e in (PORTFOLIO, ACCOUNT, POSITION, TRANSACTION, DECISION, OUTCOME, ALERT, CONVERSATION, ENGINE_STATE, ORDER)
}


MAX_LIMIT = 100_000
# An order's statuses (allsuse.execution.broker.STATUSES; a test checks they agree).
ORDER_STATUSES = ("working", "filled", "partially_filled", "cancelled", "rejected")
KEY_ID_PATTERN_HINT = "1-64 characters [A-Za-z0-9_-]"


def _get(conn: Connection, entity: _Entity, column: str, value: object) -> Record | None:
    row = conn.one(f"{entity.select()} WHERE {column} = ?", (value,))
    return None if row is None else entity.record(row)


def _list(conn: Connection, entity: _Entity, filters: Mapping[str, object], limit: int) -> list[Record]:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError.of("limit", f"must be an int in 1..{MAX_LIMIT}, got {limit!r}")
    active = {k: v for k, v in filters.items() if v is not None}
    where = " AND ".join(f"{k} = ?" for k in active)
    sql = f"{entity.select()}{' WHERE ' + where if where else ''} ORDER BY created_at, id LIMIT ?"
    return [entity.record(r) for r in conn.query(sql, (*active.values(), limit))]


_IDEMPOTENCY_SELECT = (
    "SELECT request_sha256, response, created_at FROM idempotency_keys "
    "WHERE principal = ? AND portfolio_id = ? AND rpc = ? AND idempotency_key = ?"
)


def _get_idempotent(conn: Connection, scope: IdempotencyScope) -> IdempotencyRecord | None:
    row = conn.one(_IDEMPOTENCY_SELECT, (scope.principal, scope.portfolio_id, scope.rpc, scope.key))
    return None if row is None else IdempotencyRecord(scope, str(row[0]), str(row[1]), str(row[2]))


def _check_key_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not all(c.isalnum() or c in "_-" for c in value):
        raise InvalidInputError.of("key_id", f"must be {KEY_ID_PATTERN_HINT}, got {value!r}")
    if not value.isascii():
        raise InvalidInputError.of("key_id", f"must be {KEY_ID_PATTERN_HINT}, got {value!r}")
    return value


_API_KEY_SELECT = "SELECT key_id, role, created_at, revoked_at FROM api_keys"


def _api_key(row: tuple[Any, ...]) -> ApiKeyInfo:
    return ApiKeyInfo(row[0], row[1], row[2], row[3])


def _order_columns(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The orders table's columns from an order payload (contract item 1's keys)."""
    status = payload.get("status")
    if status not in ORDER_STATUSES:
        raise InvalidInputError.of("status", f"must be one of {', '.join(ORDER_STATUSES)}, got {status!r}")
    portfolio_id = payload.get("portfolio_id") or None
    check_optional_id(portfolio_id, "portfolio_id")
    decision_id = payload.get("decision_id") or None
    check_optional_id(decision_id, "decision_id")
    return {"decision_id": decision_id, "portfolio_id": portfolio_id, "status": status}


class Transaction:
    """The writes of one unit, run by the writer inside its own savepoint of a group-commit batch.

    Every method appends an audit entry in the same transaction. Use it through `Store.write`/`Store.submit`
    to make several writes atomic; do not call Store methods from inside a unit.
    """

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._batch: list[dict[str, Any]] | None = None
        self._batch_actor: str | None = None

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._conn.dialect.name

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Runs raw SQL (`?` placeholders) in this unit; returns the affected row count. For maintenance and tests."""
        return int(self._conn.execute(sql, params).rowcount)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Runs a raw query in this unit (sees the unit's own uncommitted writes)."""
        return self._conn.query(sql, params)

    def get(self, entity: str, record_id: str) -> Record | None:
        """Reads one record inside the transaction (e.g. to build a write on current state)."""
        if entity not in ENTITIES:
            raise InvalidInputError.of("entity", f"must be one of {sorted(ENTITIES)}, got {entity!r}")
        return _get(self._conn, ENTITIES[entity], "id", record_id)

    def audit(self, action: str, payload: Mapping[str, Any], *, actor: str = "system") -> AuditEntry:
        """Appends an audit entry of its own (e.g. an authentication failure or an operator action)."""
        return audit.append(self._conn, actor, action, payload)

    @contextmanager
    def one_entry(self, *, actor: str = "system") -> Iterator[None]:
        """Record writes inside this block append one audit entry between them (action "batch", payload
        {"writes": [{"action": ..., <the entry each write would have appended>}, ...]}), written when the block
        ends: a Decide's decision and engine state cost one chain link, not two. An entry names one actor: a write
        in the block that names another gets an entry of its own, as do entries appended with `audit()`."""
        if self._batch is not None:
            raise StoreError("one_entry blocks do not nest")
        check_label(actor, "actor")
        self._batch, self._batch_actor = [], actor
        try:
            yield
            writes = self._batch
        finally:
            self._batch, self._batch_actor = None, None
        if len(writes) == 1:
            only = dict(writes[0])
            action = only.pop("action")
            audit.append(self._conn, actor, action, only)
        elif writes:
            audit.append(self._conn, actor, BATCH_ACTION, {"writes": writes})

    def _append_audit(self, actor: str, action: str, payload: dict[str, Any]) -> None:
        if self._batch is None or actor != self._batch_actor:
            audit.append(self._conn, actor, action, payload)
            return
        self._batch.append({"action": action, **payload})

    def _audit_record(self, actor: str, action: str, record: Record, payload_text: str) -> None:
        self._append_audit(
            actor,
            action,
            {
                "entity": record.entity,
                "id": record.id,
                "columns": dict(record.columns),
                "payload_sha256": payload_digest(payload_text),
            },
        )

    def _upsert(self, entity: _Entity, record_id: str, columns: dict[str, Any], payload: object, actor: str) -> Record:
        check_label(actor, "actor")
        text = encode_payload(payload)
        now = now_iso()
        existing = self._conn.one(f"SELECT created_at FROM {entity.table} WHERE id = ?", (record_id,))
        values = [columns[c] for c in entity.columns]
        if existing is None:
            created = now
            names = ", ".join(["id", *entity.columns, "created_at", "updated_at", "payload"])
            marks = ", ".join("?" * (len(entity.columns) + 4))
            self._conn.execute(
                f"INSERT INTO {entity.table} ({names}) VALUES ({marks})", (record_id, *values, now, now, text)
            )
        else:
            created = existing[0]
            sets = "".join(f"{c} = ?, " for c in entity.columns)
            self._conn.execute(
                f"UPDATE {entity.table} SET {sets}updated_at = ?, payload = ? WHERE id = ?",
                (*values, now, text, record_id),
            )
        record = Record(entity.name, record_id, columns, decode_payload(text), created, now)
        self._audit_record(actor, f"{entity.name}.put", record, text)
        return record

    def _insert_once(
        self, entity: _Entity, record_id: str, columns: dict[str, Any], payload: object, actor: str, unique: str
    ) -> Record:
        check_label(actor, "actor")
        text = encode_payload(payload)
        now = now_iso()
        names = ", ".join(["id", *entity.columns, "created_at", "updated_at", "payload"])
        marks = ", ".join("?" * (len(entity.columns) + 4))
        values = (record_id, *(columns[c] for c in entity.columns), now, now, text)
        cursor = self._conn.execute(
            f"INSERT INTO {entity.table} ({names}) VALUES ({marks}) ON CONFLICT ({unique}) DO NOTHING", values
        )
        if cursor.rowcount == 0:
            key = record_id if unique == "id" else columns[unique]
            existing = _get(self._conn, entity, unique, key)
            if existing is None:  # pragma: no cover - the conflict row is visible to this transaction
                raise StoreError(f"{entity.name} {unique}={key!r} conflicted but cannot be read back")
            return dataclasses.replace(existing, replayed=True)
        record = Record(entity.name, record_id, columns, decode_payload(text), now, now)
        self._audit_record(actor, f"{entity.name}.record", record, text)
        return record

    def _update(
        self,
        entity: _Entity,
        record_id: str,
        changes: dict[str, Any],
        payload: object,
        actor: str,
        expected: tuple[str, str] | None = None,
    ) -> Record:
        """Updates one record; with `expected` (column, value) only while the column still holds that value
        (a conditional update: a concurrent writer that changed it first makes this one a StoreConflictError)."""
        check_label(actor, "actor")
        now = now_iso()
        sets = "".join(f"{c} = ?, " for c in changes)
        params: list[Any] = [*changes.values(), now]
        payload_sql = ""
        if payload is not None:
            payload_sql = ", payload = ?"
            params.append(encode_payload(payload))
        condition, condition_params = "", tuple[str, ...]()
        if expected is not None:
            condition, condition_params = f" AND {expected[0]} = ?", (expected[1],)
        cursor = self._conn.execute(
            f"UPDATE {entity.table} SET {sets}updated_at = ?{payload_sql} WHERE id = ?{condition}",
            (*params, record_id, *condition_params),
        )
        if cursor.rowcount == 0:
            if expected is not None:
                row = self._conn.one(f"SELECT {expected[0]} FROM {entity.table} WHERE id = ?", (record_id,))
                if row is not None:
                    raise StoreConflictError(
                        f"{entity.name} {record_id!r} is {row[0]}, not {expected[1]}: it changed meanwhile"
                    )
            raise StoreNotFoundError(f"{entity.name} {record_id!r} does not exist")
        record = _get(self._conn, entity, "id", record_id)
        if record is None:  # pragma: no cover - just updated in this transaction
            raise StoreNotFoundError(f"{entity.name} {record_id!r} does not exist")
        row = self._conn.one(f"SELECT payload FROM {entity.table} WHERE id = ?", (record_id,))
        self._audit_record(actor, f"{entity.name}.update", record, "" if row is None else row[0])
        return record

    def put_portfolio(
        self, portfolio_id: str, payload: Mapping[str, Any], *, name: str | None = None, actor: str = "system"
    ) -> Record:
        """Creates or replaces a portfolio."""
        check_id(portfolio_id, "portfolio_id")
        if name is not None:
            check_label(name, "name")
        return self._upsert(PORTFOLIO, portfolio_id, {"name": name}, payload, actor)

    def put_account(
        self, account_id: str, portfolio_id: str, payload: Mapping[str, Any], *, kind: str, actor: str = "system"
    ) -> Record:
        """Creates or replaces an account of an existing portfolio (kind e.g. "gen", "rev", "com")."""
        check_id(account_id, "account_id")
        check_id(portfolio_id, "portfolio_id")
        check_label(kind, "kind")
        return self._upsert(ACCOUNT, account_id, {"portfolio_id": portfolio_id, "kind": kind}, payload, actor)

    def put_position(
        self,
        position_id: str,
        portfolio_id: str,
        payload: Mapping[str, Any],
        *,
        status: str,
        account_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """Creates or replaces a position (status e.g. "open", "closed", "assigned")."""
        check_id(position_id, "position_id")
        check_id(portfolio_id, "portfolio_id")
        check_optional_id(account_id, "account_id")
        check_label(status, "status")
        columns = {"portfolio_id": portfolio_id, "account_id": account_id, "status": status}
        return self._upsert(POSITION, position_id, columns, payload, actor)

    def record_transaction(
        self,
        portfolio_id: str,
        amount: object,
        payload: Mapping[str, Any],
        *,
        kind: str,
        account_id: str | None = None,
        transaction_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """Appends a money movement (amount: Decimal, int or decimal string; never float). Transactions are
        append-only; recording an existing transaction_id again returns the stored one (replayed=True)."""
        check_id(portfolio_id, "portfolio_id")
        check_optional_id(account_id, "account_id")
        check_label(kind, "kind")
        record_id = new_id() if transaction_id is None else check_id(transaction_id, "transaction_id")
        columns = {"portfolio_id": portfolio_id, "account_id": account_id, "kind": kind, "amount": exact_amount(amount)}
        return self._insert_once(TRANSACTION, record_id, columns, payload, actor, "id")

    def record_decision(
        self,
        idempotency_key: str,
        payload: Mapping[str, Any],
        *,
        kind: str,
        portfolio_id: str | None = None,
        status: str = "proposed",
        decision_id: str | None = None,
        account_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """Stores a decision once per idempotency key. A key seen before returns the stored decision with
        replayed=True and writes nothing (not even an audit entry). `account_id` (the account decided for) makes
        it findable by `Store.latest_decision(portfolio_id, account_id=...)`."""
        check_label(idempotency_key, "idempotency_key")
        check_optional_id(portfolio_id, "portfolio_id")
        check_optional_id(account_id, "account_id")
        check_label(kind, "kind")
        check_label(status, "status")
        record_id = new_id() if decision_id is None else check_id(decision_id, "decision_id")
        columns = {
            "idempotency_key": idempotency_key,
            "portfolio_id": portfolio_id,
            "kind": kind,
            "status": status,
            "account_id": account_id,
        }
        return self._insert_once(DECISION, record_id, columns, payload, actor, "idempotency_key")

    def put_engine_state(
        self, portfolio_id: str, payload: Mapping[str, Any], *, expected_version: int, actor: str = "system"
    ) -> Record:
        """Writes a portfolio's engine state at version expected_version + 1: an update only while the stored
        row is still at `expected_version` (checked in the UPDATE itself), an insert when there is no row yet
        (then `expected_version` is the version the caller read elsewhere, e.g. a portfolio stored before the
        engine_states table). Another version stored: StoreConflictError, nothing written."""
        check_id(portfolio_id, "portfolio_id")
        check_label(actor, "actor")
        if isinstance(expected_version, bool) or not isinstance(expected_version, int) or expected_version < 0:
            raise InvalidInputError.of("expected_version", f"must be an int >= 0, got {expected_version!r}")
        text = encode_payload(payload)
        now = now_iso()
        version = expected_version + 1
        updated = self._conn.one(
            "UPDATE engine_states SET version = ?, updated_at = ?, payload = ? WHERE id = ? AND version = ? "
            "RETURNING created_at",
            (version, now, text, portfolio_id, expected_version),
        )
        if updated is None:
            row = self._conn.one("SELECT version FROM engine_states WHERE id = ?", (portfolio_id,))
            if row is not None:
                raise StoreConflictError(
                    f"engine_state {portfolio_id!r} is at version {row[0]}, not {expected_version}: "
                    "it changed meanwhile"
                )
            self._conn.execute(
                "INSERT INTO engine_states (id, version, created_at, updated_at, payload) VALUES (?, ?, ?, ?, ?)",
                (portfolio_id, version, now, now, text),
            )
        created = now if updated is None else str(updated[0])
        record = Record(ENGINE_STATE.name, portfolio_id, {"version": version}, decode_payload(text), created, now)
        self._audit_record(actor, "engine_state.put", record, text)
        return record

    def update_decision(
        self,
        decision_id: str,
        *,
        status: str,
        payload: Mapping[str, Any] | None = None,
        expected_status: str | None = None,
        actor: str = "system",
    ) -> Record:
        """Moves a decision to a new status (e.g. "approved"), optionally replacing its payload. With
        `expected_status` the move happens only from that status, checked in the UPDATE itself: of two concurrent
        approvals one wins and the other gets StoreConflictError (nothing written)."""
        check_id(decision_id, "decision_id")
        check_label(status, "status")
        expected = None if expected_status is None else ("status", check_label(expected_status, "expected_status"))
        return self._update(DECISION, decision_id, {"status": status}, payload, actor, expected)

    def record_idempotent(
        self, scope: IdempotencyScope, request_sha256: str, response: str, *, actor: str = "system"
    ) -> IdempotencyRecord:
        """Stores the first result of a keyed write once per scope. A scope seen before writes nothing and
        returns the stored record with replayed=True (its request hash may differ: the caller decides)."""
        scope.checked()
        check_sha256(request_sha256, "request_sha256")
        if not isinstance(response, str):
            raise InvalidInputError.of("response", f"must be text, got {type(response).__name__}")
        check_label(actor, "actor")
        now = now_iso()
        cursor = self._conn.execute(
            "INSERT INTO idempotency_keys (principal, portfolio_id, rpc, idempotency_key, request_sha256, response, "
            "created_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (principal, portfolio_id, rpc, idempotency_key) DO NOTHING",
            (scope.principal, scope.portfolio_id, scope.rpc, scope.key, request_sha256, response, now),
        )
        if cursor.rowcount == 0:
            existing = _get_idempotent(self._conn, scope)
            if existing is None:  # pragma: no cover - the conflict row is visible to this transaction
                raise StoreError(f"idempotency key {scope.key!r} conflicted but cannot be read back")
            return dataclasses.replace(existing, replayed=True)
        self._append_audit(
            actor,
            "idempotency.record",
            {
                "entity": "idempotency",
                "scope": dataclasses.asdict(scope),
                "request_sha256": request_sha256,
                "response_sha256": payload_digest(response),
            },
        )
        return IdempotencyRecord(scope, request_sha256, response, now)

    def record_outcome(
        self, decision_id: str, payload: Mapping[str, Any], *, outcome_id: str | None = None, actor: str = "system"
    ) -> Record:
        """Stores what came of a decision; recording an existing outcome_id again returns the stored one."""
        check_id(decision_id, "decision_id")
        record_id = new_id() if outcome_id is None else check_id(outcome_id, "outcome_id")
        return self._insert_once(OUTCOME, record_id, {"decision_id": decision_id}, payload, actor, "id")

    def raise_alert(
        self,
        kind: str,
        severity: str,
        payload: Mapping[str, Any],
        *,
        portfolio_id: str | None = None,
        alert_id: str | None = None,
        status: str = "open",
        actor: str = "system",
    ) -> Record:
        """Stores an alert; raising an existing alert_id again returns the stored one."""
        check_label(kind, "kind")
        check_label(severity, "severity")
        check_label(status, "status")
        check_optional_id(portfolio_id, "portfolio_id")
        record_id = new_id() if alert_id is None else check_id(alert_id, "alert_id")
        columns = {"portfolio_id": portfolio_id, "kind": kind, "severity": severity, "status": status}
        return self._insert_once(ALERT, record_id, columns, payload, actor, "id")

    def update_alert(
        self, alert_id: str, *, status: str, actor: str = "system", payload: Mapping[str, Any] | None = None
    ) -> Record:
        """Moves an alert to a new status (e.g. "acknowledged", "resolved"), and replaces its payload when given
        (a repeat's count)."""
        check_id(alert_id, "alert_id")
        check_label(status, "status")
        return self._update(ALERT, alert_id, {"status": status}, None if payload is None else dict(payload), actor)

    def put_order(self, client_order_id: str, payload: Mapping[str, Any], *, actor: str = "system") -> Record:
        """Stores a new order once per client order id; an id seen before writes nothing and returns the stored
        order with replayed=True (resubmitting never doubles an order)."""
        check_id(client_order_id, "client_order_id")
        columns = _order_columns(payload)
        return self._insert_once(ORDER, client_order_id, columns, payload, actor, "id")

    def update_order(self, client_order_id: str, payload: Mapping[str, Any], *, actor: str = "system") -> Record:
        """Replaces an order's payload (its status column follows the payload's status)."""
        check_id(client_order_id, "client_order_id")
        columns = _order_columns(payload)
        return self._update(ORDER, client_order_id, {"status": columns["status"]}, dict(payload), actor)

    def put_conversation(self, conversation_id: str, payload: Mapping[str, Any], *, actor: str = "system") -> Record:
        """Creates or replaces the state of a conversation with the agent."""
        check_id(conversation_id, "conversation_id")
        return self._upsert(CONVERSATION, conversation_id, {}, payload, actor)

    def add_api_key(
        self, key_id: str, role: str, kdf: str, salt_hex: str, secret_hash: str, *, actor: str = "system"
    ) -> ApiKeyInfo:
        """Stores an already hashed API key (Store.create_api_key hashes outside the writer)."""
        _check_key_id(key_id)
        check_role(role)
        check_label(actor, "actor")
        now = now_iso()
        self._conn.execute(
            "INSERT INTO api_keys (key_id, role, kdf, salt, secret_hash, created_at, revoked_at) "
            "VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (key_id, role, kdf, salt_hex, secret_hash, now),
        )
        credential = credential_digest(kdf, salt_hex, secret_hash)
        audit.append(
            self._conn, actor, "api_key.create", {"key_id": key_id, "role": role, "credential_sha256": credential}
        )
        return ApiKeyInfo(key_id, role, now, None)

    def revoke_api_key(self, key_id: str, *, actor: str = "system") -> ApiKeyInfo:
        """Revokes an API key (kept for the record; it no longer authenticates)."""
        _check_key_id(key_id)
        check_label(actor, "actor")
        cursor = self._conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", (now_iso(), key_id)
        )
        row = self._conn.one(f"{_API_KEY_SELECT} WHERE key_id = ?", (key_id,))
        if row is None:
            raise StoreNotFoundError(f"api key {key_id!r} does not exist")
        if cursor.rowcount:
            audit.append(self._conn, actor, "api_key.revoke", {"key_id": key_id})
        return _api_key(row)


class Store:
    """Durable store of portfolios, accounts, positions, transactions, decisions, outcomes, alerts,
    conversations, API keys and the audit log.

    `url`: a SQLite file path (default var/allsuse.db, or $ALLSUSE_STORE_URL) or a PostgreSQL DSN
    (`postgresql://user@host:port/db`). Opening applies pending migrations. Writes are group-committed
    (`max_batch` writes per transaction at most; `max_wait_s` gathering time under concurrency) and return only
    once durable. `create=False` refuses to create a new store (for tools such as `allsuse audit verify`).
    Thread-safe; close it (or use `with`) to finish queued writes and release connections.
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        max_batch: int = 256,
        max_wait_s: float = 0.001,
        read_pool_size: int = 4,
        timeouts: Timeouts | None = None,
        create: bool = True,
    ) -> None:
        if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= 10_000:
            raise InvalidInputError.of("max_batch", f"must be an int in 1..10000, got {max_batch!r}")
        if not isinstance(max_wait_s, int | float) or not 0.0 <= max_wait_s <= 1.0:
            raise InvalidInputError.of("max_wait_s", f"must be in [0, 1] seconds, got {max_wait_s!r}")
        if isinstance(read_pool_size, bool) or not isinstance(read_pool_size, int) or not 1 <= read_pool_size <= 64:
            raise InvalidInputError.of("read_pool_size", f"must be an int in 1..64, got {read_pool_size!r}")
        self.location: Location = parse_location(url)
        self._timeouts = timeouts or Timeouts()
        self._dialect = dialect_for(self.location, self._timeouts)
        if not create and self.location.backend == "sqlite" and not Path(self.location.target).exists():
            raise StoreError(f"no store at {self.location.describe()}")
        conn = self._dialect.connect("writer")
        try:
            if not create and not applied_versions(conn):
                raise StoreError(f"no allsuse store at {self.location.describe()} (no schema_version table)")
            migrate_connection(conn, self._dialect)
        except BaseException:
            conn.close()
            raise
        self._committer = GroupCommitter(self._dialect, conn, max_batch, float(max_wait_s))
        self._readers = ReaderPool(self._dialect, read_pool_size, self._timeouts.lock_s + self._timeouts.statement_s)
        self._read_pool_size = read_pool_size
        self._executor: ThreadPoolExecutor | None = None
        self._aio: AsyncStore | None = None

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._dialect.name

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Commits queued writes, then closes every connection. Further calls raise StoreClosedError."""
        self._committer.close(self._timeouts.statement_s + self._timeouts.lock_s)
        self._readers.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    # --- writing -------------------------------------------------------------------------------------------------

    def submit(self, unit: Callable[[Transaction], T]) -> Future[T]:
        """Queues `unit(tx)` for the next group commit; the future resolves with its result once committed
        (or with its error; a failed batch fails every unit in it). Use `asyncio.wrap_future` to await it."""
        return self._committer.submit(lambda conn: unit(Transaction(conn)))

    def write(self, unit: Callable[[Transaction], T]) -> T:
        """Runs `unit(tx)` atomically in the next group commit and returns its result once durable."""
        return self.submit(unit).result()

    def stats(self) -> CommitStats:
        """Group commit counters: batches, writes, failed batches, largest batch."""
        return self._committer.stats()

    def audit(self, action: str, payload: Mapping[str, Any], *, actor: str = "system") -> AuditEntry:
        """Appends an audit entry of its own."""
        return self.write(lambda tx: tx.audit(action, payload, actor=actor))

    def put_portfolio(
        self, portfolio_id: str, payload: Mapping[str, Any], *, name: str | None = None, actor: str = "system"
    ) -> Record:
        """Creates or replaces a portfolio."""
        return self.write(lambda tx: tx.put_portfolio(portfolio_id, payload, name=name, actor=actor))

    def put_account(
        self, account_id: str, portfolio_id: str, payload: Mapping[str, Any], *, kind: str, actor: str = "system"
    ) -> Record:
        """Creates or replaces an account of an existing portfolio."""
        return self.write(lambda tx: tx.put_account(account_id, portfolio_id, payload, kind=kind, actor=actor))

    def put_position(
        self,
        position_id: str,
        portfolio_id: str,
        payload: Mapping[str, Any],
        *,
        status: str,
        account_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """Creates or replaces a position."""
        return self.write(
            lambda tx: tx.put_position(
                position_id, portfolio_id, payload, status=status, account_id=account_id, actor=actor
            )
        )

    def record_transaction(
        self,
        portfolio_id: str,
        amount: object,
        payload: Mapping[str, Any],
        *,
        kind: str,
        account_id: str | None = None,
        transaction_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """Appends a money movement (exact decimal amount); idempotent on transaction_id."""
        return self.write(
            lambda tx: tx.record_transaction(
                portfolio_id,
                amount,
                payload,
                kind=kind,
                account_id=account_id,
                transaction_id=transaction_id,
                actor=actor,
            )
        )

    def record_decision(
        self,
        idempotency_key: str,
        payload: Mapping[str, Any],
        *,
        kind: str,
        portfolio_id: str | None = None,
        status: str = "proposed",
        decision_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """Stores a decision once per idempotency key; a repeated key returns the stored one (replayed=True)."""
        return self.write(
            lambda tx: tx.record_decision(
                idempotency_key,
                payload,
                kind=kind,
                portfolio_id=portfolio_id,
                status=status,
                decision_id=decision_id,
                actor=actor,
            )
        )

    def update_decision(
        self,
        decision_id: str,
        *,
        status: str,
        payload: Mapping[str, Any] | None = None,
        expected_status: str | None = None,
        actor: str = "system",
    ) -> Record:
        """Moves a decision to a new status, optionally replacing its payload; with `expected_status` only from
        that status (StoreConflictError otherwise)."""
        return self.write(
            lambda tx: tx.update_decision(
                decision_id, status=status, payload=payload, expected_status=expected_status, actor=actor
            )
        )

    def record_idempotent(
        self, scope: IdempotencyScope, request_sha256: str, response: str, *, actor: str = "system"
    ) -> IdempotencyRecord:
        """Stores the first result of a keyed write once per scope (see Transaction.record_idempotent)."""
        return self.write(lambda tx: tx.record_idempotent(scope, request_sha256, response, actor=actor))

    def record_outcome(
        self, decision_id: str, payload: Mapping[str, Any], *, outcome_id: str | None = None, actor: str = "system"
    ) -> Record:
        """Stores what came of a decision; idempotent on outcome_id."""
        return self.write(lambda tx: tx.record_outcome(decision_id, payload, outcome_id=outcome_id, actor=actor))

    def raise_alert(
        self,
        kind: str,
        severity: str,
        payload: Mapping[str, Any],
        *,
        portfolio_id: str | None = None,
        alert_id: str | None = None,
        status: str = "open",
        actor: str = "system",
    ) -> Record:
        """Stores an alert; idempotent on alert_id."""
        return self.write(
            lambda tx: tx.raise_alert(
                kind, severity, payload, portfolio_id=portfolio_id, alert_id=alert_id, status=status, actor=actor
            )
        )

    def update_alert(
        self, alert_id: str, *, status: str, actor: str = "system", payload: Mapping[str, Any] | None = None
    ) -> Record:
        """Moves an alert to a new status (and replaces its payload when given)."""
        return self.write(lambda tx: tx.update_alert(alert_id, status=status, actor=actor, payload=payload))

    def put_order(self, client_order_id: str, payload: Mapping[str, Any], *, actor: str = "system") -> Record:
        """Stores a new order once per client order id (replayed=True when the id exists)."""
        return self.write(lambda tx: tx.put_order(client_order_id, payload, actor=actor))

    def update_order(self, client_order_id: str, payload: Mapping[str, Any], *, actor: str = "system") -> Record:
        """Replaces an order's payload and status."""
        return self.write(lambda tx: tx.update_order(client_order_id, payload, actor=actor))

    def get_order(self, client_order_id: str) -> Record | None:
        """One order by client order id, or None."""
        return self._get(ORDER, client_order_id)

    def list_orders(
        self,
        portfolio_id: str | None = None,
        since: str | None = None,
        limit: int = 1000,
        *,
        status: str | None = None,
        decision_id: str | None = None,
    ) -> list[Record]:
        """Orders matching the filters (created at or after `since`, an ISO time), in creation order."""
        if since is None:
            return self._list(
                ORDER, {"portfolio_id": portfolio_id, "status": status, "decision_id": decision_id}, limit
            )
        if not isinstance(since, str) or not since:
            raise InvalidInputError.of("since", f"must be an ISO time, got {since!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInputError.of("limit", f"must be an int in 1..{MAX_LIMIT}, got {limit!r}")
        active = {k: v for k, v in {"portfolio_id": portfolio_id, "status": status, "decision_id": decision_id}.items()
                  if v is not None}  # fmt: skip
        where = "".join(f" AND {k} = ?" for k in active)
        sql = f"{ORDER.select()} WHERE created_at >= ?{where} ORDER BY created_at, id LIMIT ?"
        return self.read(lambda conn: [ORDER.record(r) for r in conn.query(sql, (since, *active.values(), limit))])

    def put_conversation(self, conversation_id: str, payload: Mapping[str, Any], *, actor: str = "system") -> Record:
        """Creates or replaces the state of a conversation."""
        return self.write(lambda tx: tx.put_conversation(conversation_id, payload, actor=actor))

    def create_api_key(self, role: str, *, key_id: str | None = None, actor: str = "system") -> IssuedApiKey:
        """Issues an API key: returns its secret once and stores only a salted scrypt hash of it."""
        check_role(role)
        kid = "k" + new_id()[:20] if key_id is None else _check_key_id(key_id)
        secret = new_secret()
        kdf, salt_hex, digest = hash_secret(secret)  # hashed here, not in the writer thread
        self.write(lambda tx: tx.add_api_key(kid, role, kdf, salt_hex, digest, actor=actor))
        return IssuedApiKey(kid, role, secret)

    def revoke_api_key(self, key_id: str, *, actor: str = "system") -> ApiKeyInfo:
        """Revokes an API key."""
        return self.write(lambda tx: tx.revoke_api_key(key_id, actor=actor))

    # --- reading -------------------------------------------------------------------------------------------------

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Runs `fn(conn)` on a pooled read connection (raw queries with `?` placeholders)."""
        with self._readers.connection() as conn:
            try:
                return fn(conn)
            except Exception as exc:
                translated = self._dialect.translate(exc, "read")
                if translated is exc:
                    raise
                raise translated from exc

    def _get(self, entity: _Entity, record_id: str, column: str = "id") -> Record | None:
        return self.read(lambda conn: _get(conn, entity, column, record_id))

    def _list(self, entity: _Entity, filters: Mapping[str, object], limit: int) -> list[Record]:
        return self.read(lambda conn: _list(conn, entity, filters, limit))

    def get_portfolio(self, portfolio_id: str) -> Record | None:
        """One portfolio, or None."""
        return self._get(PORTFOLIO, portfolio_id)

    def list_portfolios(self, *, limit: int = 1000) -> list[Record]:
        """Portfolios in creation order."""
        return self._list(PORTFOLIO, {}, limit)

    def portfolio_stamps(self) -> dict[str, str]:
        """Each portfolio's id and the time its record was last written, without reading the records: a reader
        that keeps portfolios loaded reloads only those whose stamp moved."""
        rows = self.read(lambda conn: conn.query("SELECT id, updated_at FROM portfolios ORDER BY created_at, id"))
        return {str(r[0]): str(r[1]) for r in rows}

    def get_account(self, account_id: str) -> Record | None:
        """One account, or None."""
        return self._get(ACCOUNT, account_id)

    def list_accounts(self, portfolio_id: str, *, limit: int = 1000) -> list[Record]:
        """The accounts of a portfolio in creation order."""
        return self._list(ACCOUNT, {"portfolio_id": portfolio_id}, limit)

    def get_position(self, position_id: str) -> Record | None:
        """One position, or None."""
        return self._get(POSITION, position_id)

    def list_positions(
        self,
        *,
        portfolio_id: str | None = None,
        account_id: str | None = None,
        status: str | None = None,
        limit: int = 1000,
    ) -> list[Record]:
        """Positions matching the given filters, in creation order."""
        return self._list(POSITION, {"portfolio_id": portfolio_id, "account_id": account_id, "status": status}, limit)

    def get_transaction(self, transaction_id: str) -> Record | None:
        """One transaction, or None."""
        return self._get(TRANSACTION, transaction_id)

    def list_transactions(
        self, *, portfolio_id: str | None = None, account_id: str | None = None, limit: int = 1000
    ) -> list[Record]:
        """Transactions matching the filters, in the order recorded."""
        return self._list(TRANSACTION, {"portfolio_id": portfolio_id, "account_id": account_id}, limit)

    def get_decision(self, decision_id: str) -> Record | None:
        """One decision by id, or None."""
        return self._get(DECISION, decision_id)

    def get_decision_by_key(self, idempotency_key: str) -> Record | None:
        """The decision stored under an idempotency key, or None."""
        return self._get(DECISION, idempotency_key, "idempotency_key")

    def get_idempotent(self, scope: IdempotencyScope) -> IdempotencyRecord | None:
        """The first result stored for a keyed write in this scope, or None."""
        scope.checked()
        return self.read(lambda conn: _get_idempotent(conn, scope))

    def list_decisions(
        self, *, portfolio_id: str | None = None, status: str | None = None, limit: int = 1000, latest: bool = False
    ) -> list[Record]:
        """Decisions matching the filters, in creation order; with `latest` the newest `limit` of them, newest
        first."""
        if not latest:
            return self._list(DECISION, {"portfolio_id": portfolio_id, "status": status}, limit)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInputError.of("limit", f"must be an int in 1..{MAX_LIMIT}, got {limit!r}")
        active = {k: v for k, v in {"portfolio_id": portfolio_id, "status": status}.items() if v is not None}
        where = " AND ".join(f"{k} = ?" for k in active)
        sql = f"{DECISION.select()}{' WHERE ' + where if where else ''} ORDER BY created_at DESC, id DESC LIMIT ?"
        return self.read(lambda conn: [DECISION.record(r) for r in conn.query(sql, (*active.values(), limit))])

    def latest_decision(self, portfolio_id: str, *, account_id: str | None = None) -> Record | None:
        """The last decision stored for a portfolio (for one of its accounts with `account_id`), or None: one
        index probe (decisions_latest / decisions_account_latest) that decodes one row, whatever the store holds.
        Decisions stored before migration 5 carry no account_id and are found only without one."""
        check_id(portfolio_id, "portfolio_id")
        check_optional_id(account_id, "account_id")
        where, params = "portfolio_id = ?", [portfolio_id]
        if account_id is not None:
            where, params = "portfolio_id = ? AND account_id = ?", [portfolio_id, account_id]
        sql = f"{DECISION.select()} WHERE {where} ORDER BY created_at DESC, id DESC LIMIT 1"
        row = self.read(lambda conn: conn.one(sql, tuple(params)))
        return None if row is None else DECISION.record(row)

    def get_engine_state(self, portfolio_id: str) -> Record | None:
        """A portfolio's engine state and aggregate version (columns["version"]), or None."""
        return self._get(ENGINE_STATE, portfolio_id)

    def get_portfolio_state(self, portfolio_id: str) -> tuple[Record | None, Record | None]:
        """The portfolio record and its engine state read in one snapshot, so the pair is one version of the
        aggregate (a write between two separate reads could pair an old portfolio with a newer state)."""

        def both(conn: Connection) -> tuple[Record | None, Record | None]:
            self._dialect.begin_snapshot(conn)
            try:
                return _get(conn, PORTFOLIO, "id", portfolio_id), _get(conn, ENGINE_STATE, "id", portfolio_id)
            finally:
                conn.rollback_quietly()

        return self.read(both)

    def get_outcome(self, outcome_id: str) -> Record | None:
        """One outcome, or None."""
        return self._get(OUTCOME, outcome_id)

    def list_outcomes(self, decision_id: str, *, limit: int = 1000) -> list[Record]:
        """The outcomes of a decision."""
        return self._list(OUTCOME, {"decision_id": decision_id}, limit)

    def get_alert(self, alert_id: str) -> Record | None:
        """One alert, or None."""
        return self._get(ALERT, alert_id)

    def list_alerts(
        self, *, status: str | None = None, portfolio_id: str | None = None, limit: int = 1000
    ) -> list[Record]:
        """Alerts matching the filters, in creation order."""
        return self._list(ALERT, {"status": status, "portfolio_id": portfolio_id}, limit)

    def get_conversation(self, conversation_id: str) -> Record | None:
        """The stored state of a conversation, or None."""
        return self._get(CONVERSATION, conversation_id)

    def get_api_key(self, key_id: str) -> ApiKeyInfo | None:
        """An API key's role and state (never its secret or hash), or None."""
        row = self.read(lambda conn: conn.one(f"{_API_KEY_SELECT} WHERE key_id = ?", (key_id,)))
        return None if row is None else _api_key(row)

    def list_api_keys(self) -> list[ApiKeyInfo]:
        """Every API key, revoked ones included."""
        return [_api_key(r) for r in self.read(lambda conn: conn.query(f"{_API_KEY_SELECT} ORDER BY created_at"))]

    def verify_api_key(self, key_id: str, secret: str) -> ApiKeyInfo | None:
        """The key if `secret` is its secret and it is not revoked; None otherwise. An unknown key id costs no
        hashing (key ids are not secret; hashing for them would hand anyone a cheap way to burn CPU)."""
        row = self.read(
            lambda conn: conn.one(
                "SELECT key_id, role, created_at, revoked_at, kdf, salt, secret_hash FROM api_keys WHERE key_id = ?",
                (key_id,),
            )
        )
        if row is None:
            return None
        if not check_secret(secret, row[4], row[5], row[6]) or row[3] is not None:
            return None
        return _api_key(row[:4])

    def authenticate(self, token: str) -> ApiKeyInfo | None:
        """Checks a "<key_id>.<secret>" token (see IssuedApiKey.token)."""
        key_id, dot, secret = token.partition(".")
        if not dot or not key_id or not secret:
            return None
        return self.verify_api_key(key_id, secret)

    def audit_entries(self, *, after_seq: int = 0, limit: int = 1000) -> list[AuditEntry]:
        """Audit entries with seq > after_seq, in order."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInputError.of("limit", f"must be an int in 1..{MAX_LIMIT}, got {limit!r}")
        return self.read(lambda conn: audit.entries(conn, after_seq, limit))

    def audit_head(self) -> tuple[int, str] | None:
        """(seq, hash) of the last audit entry as recorded in the head row; (0, 64 zeros) when empty."""
        row = self.read(lambda conn: conn.one("SELECT seq, hash FROM audit_head WHERE id = 1"))
        return None if row is None else (int(row[0]), str(row[1]))

    def verify_audit(self) -> AuditReport:
        """Walks the whole audit chain in one snapshot and reports the first problem (see audit.py)."""
        return self.read(lambda conn: audit.verify_connection(conn, self._dialect))

    def verify_full(self) -> FullReport:
        """`audit verify --full`: the database's own consistency check (SQLite integrity_check; PostgreSQL amcheck
        when installed, else a full read of every table), the audit chain, and every record compared with the
        audit entry that last wrote it (see integrity.py)."""
        return self.read(lambda conn: verify_full_connection(conn, self._dialect))

    def schema_versions(self) -> list[int]:
        """The applied migration versions."""
        return self.read(applied_versions)

    def backup(self, path: str | os.PathLike[str]) -> Path:
        """SQLite only: writes a consistent, compacted copy to `path` (VACUUM INTO) while the store runs."""
        if self.location.backend != "sqlite":
            raise StoreError("backup() copies SQLite files; back up PostgreSQL with pg_dump (docs/store.md)")
        target = Path(path).resolve()
        if target.exists():
            raise InvalidInputError.of("path", f"{target} already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.location.target, timeout=self._timeouts.lock_s, isolation_level=None)
        try:
            conn.execute("VACUUM INTO ?", (str(target),))
        except sqlite3.Error as exc:
            raise StoreError(f"backup to {target} failed: {exc}") from exc
        finally:
            conn.close()
        return target

    def optimize(self) -> str:
        """Refreshes the planner's statistics and reclaims free space: ANALYZE then VACUUM on SQLite, VACUUM (ANALYZE)
        on PostgreSQL, each on its own autocommit connection (neither may run inside a transaction). Returns what
        ran. A busy database (a long writer) is a StoreError; the nightly job logs it and tries again next night."""
        conn = self._dialect.connect("writer")
        try:
            if self.location.backend == "sqlite":
                conn.execute("ANALYZE")
                conn.execute("VACUUM")
                return "ANALYZE; VACUUM"
            conn.execute("VACUUM (ANALYZE)")
            return "VACUUM (ANALYZE)"
        except Exception as exc:
            translated = self._dialect.translate(exc, "optimizing the store")
            if translated is exc:
                raise
            raise translated from exc
        finally:
            conn.close()

    # --- asyncio -------------------------------------------------------------------------------------------------

    @property
    def aio(self) -> AsyncStore:
        """The same store for asyncio code: writes await their group commit, reads run on a bounded executor."""
        if self._aio is None:
            self._aio = AsyncStore(self)
        return self._aio

    def _read_executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self._read_pool_size, thread_name_prefix="allsuse-store-read")
        return self._executor


class AsyncStore:
    """Async façade of a Store (`store.aio`): never blocks the event loop."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def write(self, unit: Callable[[Transaction], T]) -> T:
        """Awaits `unit(tx)` committed in a group commit batch."""
        return await asyncio.wrap_future(self.store.submit(unit))

    async def call(self, fn: Callable[[], T]) -> T:
        """Runs a blocking store call (a read, key verification) on the store's bounded executor."""
        return await asyncio.get_running_loop().run_in_executor(self.store._read_executor(), fn)

    async def audit(self, action: str, payload: Mapping[str, Any], *, actor: str = "system") -> AuditEntry:
        """See Store.audit."""
        return await self.write(lambda tx: tx.audit(action, payload, actor=actor))

    async def put_portfolio(
        self, portfolio_id: str, payload: Mapping[str, Any], *, name: str | None = None, actor: str = "system"
    ) -> Record:
        """See Store.put_portfolio."""
        return await self.write(lambda tx: tx.put_portfolio(portfolio_id, payload, name=name, actor=actor))

    async def put_account(
        self, account_id: str, portfolio_id: str, payload: Mapping[str, Any], *, kind: str, actor: str = "system"
    ) -> Record:
        """See Store.put_account."""
        return await self.write(lambda tx: tx.put_account(account_id, portfolio_id, payload, kind=kind, actor=actor))

    async def put_position(
        self,
        position_id: str,
        portfolio_id: str,
        payload: Mapping[str, Any],
        *,
        status: str,
        account_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """See Store.put_position."""
        return await self.write(
            lambda tx: tx.put_position(
                position_id, portfolio_id, payload, status=status, account_id=account_id, actor=actor
            )
        )

    async def record_transaction(
        self,
        portfolio_id: str,
        amount: object,
        payload: Mapping[str, Any],
        *,
        kind: str,
        account_id: str | None = None,
        transaction_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """See Store.record_transaction."""
        return await self.write(
            lambda tx: tx.record_transaction(
                portfolio_id,
                amount,
                payload,
                kind=kind,
                account_id=account_id,
                transaction_id=transaction_id,
                actor=actor,
            )
        )

    async def record_decision(
        self,
        idempotency_key: str,
        payload: Mapping[str, Any],
        *,
        kind: str,
        portfolio_id: str | None = None,
        status: str = "proposed",
        decision_id: str | None = None,
        actor: str = "system",
    ) -> Record:
        """See Store.record_decision."""
        return await self.write(
            lambda tx: tx.record_decision(
                idempotency_key,
                payload,
                kind=kind,
                portfolio_id=portfolio_id,
                status=status,
                decision_id=decision_id,
                actor=actor,
            )
        )

    async def update_decision(
        self,
        decision_id: str,
        *,
        status: str,
        payload: Mapping[str, Any] | None = None,
        expected_status: str | None = None,
        actor: str = "system",
    ) -> Record:
        """See Store.update_decision."""
        return await self.write(
            lambda tx: tx.update_decision(
                decision_id, status=status, payload=payload, expected_status=expected_status, actor=actor
            )
        )

    async def record_idempotent(
        self, scope: IdempotencyScope, request_sha256: str, response: str, *, actor: str = "system"
    ) -> IdempotencyRecord:
        """See Store.record_idempotent."""
        return await self.write(lambda tx: tx.record_idempotent(scope, request_sha256, response, actor=actor))

    async def get_idempotent(self, scope: IdempotencyScope) -> IdempotencyRecord | None:
        """See Store.get_idempotent."""
        return await self.call(lambda: self.store.get_idempotent(scope))

    async def record_outcome(
        self, decision_id: str, payload: Mapping[str, Any], *, outcome_id: str | None = None, actor: str = "system"
    ) -> Record:
        """See Store.record_outcome."""
        return await self.write(lambda tx: tx.record_outcome(decision_id, payload, outcome_id=outcome_id, actor=actor))

    async def raise_alert(
        self,
        kind: str,
        severity: str,
        payload: Mapping[str, Any],
        *,
        portfolio_id: str | None = None,
        alert_id: str | None = None,
        status: str = "open",
        actor: str = "system",
    ) -> Record:
        """See Store.raise_alert."""
        return await self.write(
            lambda tx: tx.raise_alert(
                kind, severity, payload, portfolio_id=portfolio_id, alert_id=alert_id, status=status, actor=actor
            )
        )

    async def update_alert(self, alert_id: str, *, status: str, actor: str = "system") -> Record:
        """See Store.update_alert."""
        return await self.write(lambda tx: tx.update_alert(alert_id, status=status, actor=actor))

    async def put_conversation(
        self, conversation_id: str, payload: Mapping[str, Any], *, actor: str = "system"
    ) -> Record:
        """See Store.put_conversation."""
        return await self.write(lambda tx: tx.put_conversation(conversation_id, payload, actor=actor))

    async def create_api_key(self, role: str, *, key_id: str | None = None, actor: str = "system") -> IssuedApiKey:
        """See Store.create_api_key (the scrypt hashing runs on the executor)."""
        return await self.call(lambda: self.store.create_api_key(role, key_id=key_id, actor=actor))

    async def revoke_api_key(self, key_id: str, *, actor: str = "system") -> ApiKeyInfo:
        """See Store.revoke_api_key."""
        return await self.write(lambda tx: tx.revoke_api_key(key_id, actor=actor))

    async def get_portfolio(self, portfolio_id: str) -> Record | None:
        """See Store.get_portfolio."""
        return await self.call(lambda: self.store.get_portfolio(portfolio_id))

    async def get_account(self, account_id: str) -> Record | None:
        """See Store.get_account."""
        return await self.call(lambda: self.store.get_account(account_id))

    async def get_position(self, position_id: str) -> Record | None:
        """See Store.get_position."""
        return await self.call(lambda: self.store.get_position(position_id))

    async def get_transaction(self, transaction_id: str) -> Record | None:
        """See Store.get_transaction."""
        return await self.call(lambda: self.store.get_transaction(transaction_id))

    async def get_decision(self, decision_id: str) -> Record | None:
        """See Store.get_decision."""
        return await self.call(lambda: self.store.get_decision(decision_id))

    async def get_decision_by_key(self, idempotency_key: str) -> Record | None:
        """See Store.get_decision_by_key."""
        return await self.call(lambda: self.store.get_decision_by_key(idempotency_key))

    async def get_outcome(self, outcome_id: str) -> Record | None:
        """See Store.get_outcome."""
        return await self.call(lambda: self.store.get_outcome(outcome_id))

    async def get_alert(self, alert_id: str) -> Record | None:
        """See Store.get_alert."""
        return await self.call(lambda: self.store.get_alert(alert_id))

    async def get_conversation(self, conversation_id: str) -> Record | None:
        """See Store.get_conversation."""
        return await self.call(lambda: self.store.get_conversation(conversation_id))

    async def verify_api_key(self, key_id: str, secret: str) -> ApiKeyInfo | None:
        """See Store.verify_api_key."""
        return await self.call(lambda: self.store.verify_api_key(key_id, secret))

    async def authenticate(self, token: str) -> ApiKeyInfo | None:
        """See Store.authenticate."""
        return await self.call(lambda: self.store.authenticate(token))

    async def verify_audit(self) -> AuditReport:
        """See Store.verify_audit."""
        return await self.call(self.store.verify_audit)
