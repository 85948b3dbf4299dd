"""Store support for idempotent write RPCs and race-free status changes, on SQLite and PostgreSQL.

Idempotency records are keyed by (principal, portfolio, RPC, key) and hold the request's hash and the first
response; a decision's status moves only from the status the caller expects (a conditional update), so two
concurrent approvals cannot both succeed. `verify_full` checks every row against the audit entry that wrote it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from allsuse.errors import InvalidInputError
from allsuse.store import IdempotencyScope, Store, StoreConflictError
from allsuse.store.pgtest import TemporaryPostgres

WAIT = 30.0


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = str(tmp_path / "allsuse.db")
    else:
        server: TemporaryPostgres = request.getfixturevalue("pg_server")
        url = server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    s = Store(url)
    try:
        yield s
    finally:
        s.close()


def scope(principal: str = "alice", portfolio: str = "p1", rpc: str = "Withdraw", key: str = "k1") -> IdempotencyScope:
    return IdempotencyScope(principal, portfolio, rpc, key)


def test_an_idempotency_record_is_scoped_and_stored_once(store: Store) -> None:
    assert store.get_idempotent(scope()) is None
    first = store.write(lambda tx: tx.record_idempotent(scope(), "a" * 64, "first", actor="alice"))
    assert not first.replayed and first.response == "first"
    again = store.write(lambda tx: tx.record_idempotent(scope(), "b" * 64, "second", actor="alice"))
    assert again.replayed and again.response == "first" and again.request_sha256 == "a" * 64
    for other in (scope(principal="bob"), scope(portfolio="p2"), scope(rpc="RecordFill")):
        assert store.get_idempotent(other) is None
        assert not store.write(lambda tx, o=other: tx.record_idempotent(o, "c" * 64, "other")).replayed
    stored = store.get_idempotent(scope())
    assert stored is not None and stored.response == "first" and not stored.replayed
    entries = [e for e in store.audit_entries() if e.action == "idempotency.record"]
    assert len(entries) == 4 and entries[0].payload["request_sha256"] == "a" * 64
    assert store.verify_full().ok


def test_idempotency_scope_is_validated(store: Store) -> None:
    with pytest.raises(InvalidInputError, match="idempotency_key"):
        store.get_idempotent(scope(key=""))
    with pytest.raises(InvalidInputError, match="idempotency_key"):
        store.get_idempotent(scope(key="x" * 201))
    with pytest.raises(InvalidInputError, match="request_sha256"):
        store.write(lambda tx: tx.record_idempotent(scope(), "not-a-hash", "r"))


def test_conditional_status_update_lets_one_of_two_racers_win(store: Store) -> None:
    d = store.record_decision("k", {"x": 1}, kind="entry", status="pending")
    store.update_decision(d.id, status="approved", expected_status="pending")
    with pytest.raises(StoreConflictError, match="approved"):
        store.update_decision(d.id, status="declined", expected_status="pending")
    got = store.get_decision(d.id)
    assert got is not None and got.columns["status"] == "approved"

    racers = [store.record_decision(f"r{i}", {"i": i}, kind="entry", status="pending") for i in range(20)]
    wins: list[str] = []
    losses: list[str] = []
    barrier = threading.Barrier(2, timeout=WAIT)

    def approve(status: str) -> None:
        barrier.wait()
        for r in racers:
            try:
                store.update_decision(r.id, status=status, expected_status="pending")
                wins.append(r.id)
            except StoreConflictError:
                losses.append(r.id)

    threads = [threading.Thread(target=approve, args=(s,), daemon=True) for s in ("approved", "declined")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=WAIT)
    assert sorted(wins) == sorted(losses) == sorted(r.id for r in racers)
